/* One epoch of dynae-mpi's communication, replayed in SimGrid's SMPI (compiled with smpicc, run
 * by tools/smpi_projection.py under smpirun on a described cluster; not part of the program).
 *
 * Compute is injected as measured seconds (as flops of hosts of 1 Gflop/s), so only the messages are
 * simulated (run with --cfg=smpi/simulate-computation:no):
 *   - the data scatter at load time: an all-to-all of the pair records (once per run);
 *   - every step: the step's compute; with a global batch (SW_ROWS > 0 rows over all ranks) the
 *     sliced Wasserstein's exchange: an allgatherv of every rank's share of the moves (2 d values
 *     per row) and, beyond the gather way's rank count (SW_SPLIT 1), the reduce-scatter of the
 *     rows' gradients (d values per row); then the sum of the gradient buffer over all ranks,
 *     either MPI_Allreduce over all ranks (mpi) or the trainer's hierarchical way (hier,
 *     src/parallel/exchange.c): inside a node no message moves, the ranks copy through a
 *     shared-memory window, so its copies are injected as compute of COPY_SECONDS each (one
 *     gradient buffer through shared memory) and its waits on the other ranks' sequence lines as
 *     node-wide synchronisations: each rank writes its slot; all wait for all slots (a barrier);
 *     each sums its chunk over the slots (one buffer's worth of reads); the leader waits for all
 *     chunks (a barrier), assembles them, sums the node sums with the other leaders by
 *     MPI_Allreduce and writes the result; the others wait for its flag (a broadcast of one value)
 *     and copy the result;
 *   - every epoch: the encoding and clustering compute, the clustering's merge rounds (an
 *     allgather of proposal counts and an allgatherv of the proposals), the bin counts'
 *     allreduce, and the test losses' allreduce.
 * Only --sim-steps steps are simulated; rank 0 prints the simulated seconds per step, the
 * clustering's seconds and the scatter's seconds as one JSON line.
 * Usage: smpi_replay STEPS_SIM STEP_SECONDS GRAD_VALUES EPOCH_SECONDS ROUNDS PROPOSALS D K
 *                    SCATTER_BYTES_PER_RANK RANKS_PER_NODE HIER(0|1) SW_ROWS SW_SPLIT(0|1) COPY_SECONDS */
#include <mpi.h>
#include <smpi/smpi.h>
#include <stdio.h>
#include <stdlib.h>

/* the speed of every host in the platforms that tools/smpi_projection.py writes ("1Gf"): seconds of
 * measured compute become this many flops */
#define DY_HOST_FLOPS 1e9

static void sum_gradients(float *buf, int n, int hier, double copy_seconds, MPI_Comm node, MPI_Comm leaders,
                          int node_rank)
{
  if (!hier) {
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return;
  }
  const double copy_flops = copy_seconds * DY_HOST_FLOPS;
  int flag = 0;
  smpi_execute_flops(copy_flops); /* the rank's buffer into its slot */
  MPI_Barrier(node);              /* every slot published */
  smpi_execute_flops(copy_flops); /* its chunk summed over the node's slots */
  if (node_rank == 0) {
    MPI_Barrier(node);              /* every chunk published */
    smpi_execute_flops(copy_flops); /* the chunks assembled */
    if (leaders != MPI_COMM_NULL) MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, leaders);
    smpi_execute_flops(copy_flops); /* the result into the final area */
    MPI_Bcast(&flag, 1, MPI_INT, 0, node);
  } else {
    MPI_Barrier(node);
    MPI_Bcast(&flag, 1, MPI_INT, 0, node); /* the leader's final flag */
    smpi_execute_flops(copy_flops);        /* the result copied out */
  }
}

int main(int argc, char **argv)
{
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc != 15) {
    if (rank == 0) fprintf(stderr, "usage: smpi_replay STEPS_SIM STEP_SECONDS GRAD_VALUES EPOCH_SECONDS ROUNDS "
                                   "PROPOSALS D K SCATTER_BYTES_PER_RANK RANKS_PER_NODE HIER SW_ROWS SW_SPLIT "
                                   "COPY_SECONDS\n");
    MPI_Finalize();
    return 2;
  }
  const int steps = atoi(argv[1]), n = atoi(argv[3]), rounds = atoi(argv[5]), proposals = atoi(argv[6]);
  const int d = atoi(argv[7]), K = atoi(argv[8]), per_node = atoi(argv[10]), hier = atoi(argv[11]);
  const double step_seconds = atof(argv[2]), epoch_seconds = atof(argv[4]), scatter = atof(argv[9]);
  const int sw_rows = atoi(argv[12]), sw_split = atoi(argv[13]);
  const double copy_seconds = atof(argv[14]);
  MPI_Comm node, leaders;
  MPI_Comm_split(MPI_COMM_WORLD, rank / per_node, rank, &node);
  int node_rank;
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_split(MPI_COMM_WORLD, node_rank == 0 ? 0 : MPI_UNDEFINED, rank, &leaders);
  float *grad = calloc((size_t)n, sizeof *grad);
  double *prop = calloc((size_t)proposals * d, sizeof *prop), *all = calloc((size_t)proposals * d * size, sizeof *all);
  int *counts = calloc((size_t)size, sizeof *counts), *displs = calloc((size_t)size, sizeof *displs);
  long long *bins = calloc((size_t)K, sizeof *bins);
  /* the global batch's rows, shared out as evenly as the trainer's largest remainder does */
  int *sw_count = calloc((size_t)size, sizeof *sw_count), *sw_displ = calloc((size_t)size, sizeof *sw_displ);
  for (int k = 0, at = 0; k < size; k++) {
    sw_count[k] = 2 * d * (sw_rows / size + (k < sw_rows % size));
    sw_displ[k] = at;
    at += sw_count[k];
  }
  float *sw_send = calloc((size_t)2 * d * (sw_rows / size + 1), sizeof *sw_send);
  float *sw_all = calloc((size_t)2 * d * sw_rows + 1, sizeof *sw_all);
  /* the scatter: every rank sends an equal share of its records to every rank */
  const int per_dest = (int)(scatter / size / 8); /* in doubles */
  double *sb = calloc((size_t)per_dest * size + 1, sizeof *sb), *rb = calloc((size_t)per_dest * size + 1, sizeof *rb);
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  MPI_Alltoall(sb, per_dest, MPI_DOUBLE, rb, per_dest, MPI_DOUBLE, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  const double t_scatter = MPI_Wtime() - t0;
  t0 = MPI_Wtime();
  for (int s = 0; s < steps; s++) {
    smpi_execute_flops(step_seconds * DY_HOST_FLOPS);
    if (sw_rows > 0) {
      MPI_Allgatherv(sw_send, sw_count[rank], MPI_FLOAT, sw_all, sw_count, sw_displ, MPI_FLOAT, MPI_COMM_WORLD);
      if (sw_split) {
        int *half = counts; /* d values per row come back to the row's rank */
        for (int k = 0; k < size; k++) half[k] = sw_count[k] / 2;
        MPI_Reduce_scatter(sw_all, sw_send, half, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      }
    }
    if (size > 1) sum_gradients(grad, n, hier, copy_seconds, node, leaders, node_rank); /* 1 rank: no sum */
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const double t_steps = MPI_Wtime() - t0;
  t0 = MPI_Wtime();
  smpi_execute_flops(epoch_seconds * DY_HOST_FLOPS);
  for (int r = 0; r < rounds; r++) {
    int mine = proposals;
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    for (int k = 0; k < size; k++) {
      counts[k] *= d;
      displs[k] = k * proposals * d;
    }
    MPI_Allgatherv(prop, proposals * d, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, MPI_COMM_WORLD);
  }
  MPI_Allreduce(MPI_IN_PLACE, bins, K, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  double test[4] = {0, 0, 0, 0};
  MPI_Allreduce(MPI_IN_PLACE, test, 4, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  const double t_epoch = MPI_Wtime() - t0;
  if (rank == 0)
    printf("{\"ranks\": %d, \"seconds_per_step\": %.9g, \"epoch_other_seconds\": %.9g, \"scatter_seconds\": %.9g}\n",
           size, t_steps / steps, t_epoch, t_scatter);
  free(grad), free(prop), free(all), free(counts), free(displs), free(bins), free(sb), free(rb);
  free(sw_count), free(sw_displ), free(sw_send), free(sw_all);
  if (leaders != MPI_COMM_NULL) MPI_Comm_free(&leaders);
  MPI_Comm_free(&node);
  MPI_Finalize();
  return 0;
}
