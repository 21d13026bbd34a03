/* Gradient check of the baselines' step (nn/dy_baseline.h) with the image networks
 * (model.network = "conv") against central differences of their losses, in double precision:
 * beta-VAE, SWAE and SDE-VAE, each on its own shape (one and two input channels, a one-channel
 * target of a two-channel input, several latent dimensions), the whole loss rec + beta x
 * regulariser. NPICK values of every layer's weight and bias of the conv encoder and decoder, and
 * every weight and bias of SDE-VAE's force net (an MLP). Also checks the nets: the encoder's linear
 * layer gives 2 d values (mean, log-variance) for the VAEs and d for SWAE, the force net exists
 * for SDE-VAE only, no log-diffusion net, and the latent (dy_model_encode) is the encoder's mean.
 * Fails above 1e-5 relative error, when a layer has no value off a kink, or when more than half
 * the values sit on kinks. */
#include "nn/dy_baseline.h"
#include "fdcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* as test_conv_model.c: small steps (a bias moves thousands of pixels through their ReLUs), and
 * targets near the model's own reconstructions so that the loss, and the round-off of its
 * differences, stay small */
#define TOL 1e-5
#define FD_STEP 1e-5
#define FD_FLOOR 1e-4
#define KINK_FLOOR 1e-3
#define KINK_TOL 1e-6
#define NPICK 4 /* values checked per weight or bias tensor of the image nets */

static const char *type_names[] = {"none", "vae", "swae", "sdevae"};

/* Checks one case; returns the worst relative error. */
static double check_case(DyBaselineType type, int C, int Cy, int e, int h, int d, int B, double beta, uint64_t seed,
                         int *bad)
{
  const int side2 = DY_CNN_SIDE * DY_CNN_SIDE, L = 6;
  DyModelShape shape = {.D = C * side2, .Dy = Cy * side2, .d = d, .nhidden = {1, 1, 2, 2},
                        .hidden = {{e}, {h}, {6, 5}, {6, 5}}, .network = DY_NETWORK_CONV, .channels = C};
  DyModel model;
  DyWork *nets;
  DyBaseWork *work;
  DyRng rng;
  dy_baseline_shape(type, &shape);
  PetscCallAbort(PETSC_COMM_SELF, dy_model_create(&shape, &model));
  PetscCallAbort(PETSC_COMM_SELF, dy_work_create(&model, B, L, &nets));
  PetscCallAbort(PETSC_COMM_SELF, dy_basework_create(&model, nets, B, L, &work));
  dy_rng_seed(&rng, seed, 5);
  dy_model_init(&model, &rng);
  printf("%s: C=%d Cy=%d e=%d h=%d d=%d B=%d beta %.1f, %zu parameters\n", type_names[type], C, Cy, e, h, d, B, beta,
         model.nparam);

  /* the nets: the image encoder's last (linear) layer gives the posterior's outputs */
  const DyCnn *enc = &model.cnn[DY_NET_ENCODER];
  const int zo = enc->layer[enc->nlayer - 1].out, want = type == DY_BASELINE_SWAE ? d : 2 * d;
  if (zo != want || model.net[DY_NET_ENCODER].dims[model.net[DY_NET_ENCODER].nlayer] != want ||
      model.net[DY_NET_LOGDIFF].nparam != 0 || (model.net[DY_NET_FORCE].nparam != 0) != (type == DY_BASELINE_SDEVAE) ||
      model.nparam_rep != enc->nparam + model.cnn[DY_NET_DECODER].nparam) {
    printf("  FAIL wrong nets: encoder outputs %d (want %d), force %zu and log-diffusion %zu parameters\n", zo, want,
           model.net[DY_NET_FORCE].nparam, model.net[DY_NET_LOGDIFF].nparam);
    *bad = 1;
  }

  const int rows = dy_baseline_noise_rows(type, B);
  DyFdBaseline p = {.model = &model, .work = work, .B = B, .L = L, .opt = {.type = type, .beta = beta, .nu = 0.3}};
  p.x0 = dy_fd_images(&rng, B, C, 0.1);
  p.x1 = dy_fd_images(&rng, B, C, 0.1);
  dy_fd_baseline_draw(&p, &rng);
  /* the latent of the results is the encoder's mean: the first d of its outputs */
  if (!dy_fd_latent_is_mean(&model, nets, B, p.x0)) *bad = 1;

  /* targets: the decoder's outputs on the step's own decoder inputs (Gaussian samples of the
   * encoder's posterior, or swae's latent), plus a little noise */
  const size_t ny = (size_t)B * shape.Dy;
  p.y0 = malloc(ny * sizeof *p.y0);
  p.y1 = malloc(ny * sizeof *p.y1);
  {
    dy_real *xin = malloc((size_t)rows * shape.D * sizeof *xin), *zin = malloc((size_t)rows * d * sizeof *zin);
    memcpy(xin, p.x0, (size_t)B * shape.D * sizeof *xin);
    if (rows > B) memcpy(xin + (size_t)B * shape.D, p.x1, (size_t)B * shape.D * sizeof *xin);
    const dy_real *out = dy_model_net_forward(&model, nets, DY_NET_ENCODER, rows, xin);
    if (type == DY_BASELINE_SWAE) memcpy(zin, out, (size_t)rows * d * sizeof *zin);
    else dy_gauss_sample(rows, d, out, p.noise, zin);
    const dy_real *yhat = dy_model_net_forward(&model, nets, DY_NET_DECODER, rows, zin);
    for (size_t i = 0; i < 2 * ny; i++) { /* y1: x1's frames for pairs, else unused (a copy of y0) */
      const size_t r = i < ny || rows > B ? i : i - ny;
      (i < ny ? p.y0 : p.y1)[i % ny] = yhat[r] + (dy_real)(0.03 * dy_rng_normal(&rng));
    }
    free(xin), free(zin);
  }

  DyLosses l, l2;
  dy_real *g = malloc(model.nparam * sizeof *g);
  dy_baseline_loss_grad(&model, work, &p.opt, B, L, p.x0, p.x1, p.y0, p.y1, p.theta, p.noise, &l);
  memcpy(g, model.grads, model.nparam * sizeof *g);
  dy_baseline_losses(&model, work, &p.opt, B, L, p.x0, p.x1, p.y0, p.y1, p.theta, p.noise, &l2);
  if (fabs(l.rec - l2.rec) > 1e-12 * l.rec || fabs(l.sw - l2.sw) > 1e-12 * l.sw ||
      fabs(l.prior - l2.prior) > 1e-12 * fabs(l.prior) || !(l.rec > 0) ||
      (type == DY_BASELINE_SWAE ? !(l.sw > 0) || l.prior != 0 : l.sw != 0 || !(l.prior != 0))) {
    printf("  FAIL losses: rec %g sw %g prior %g, losses only: %g %g %g\n", l.rec, l.sw, l.prior, l2.rec, l2.sw,
           l2.prior);
    *bad = 1;
  }
  printf("  losses: rec %.6g sw %.6g prior %.6g\n", l.rec, l.sw, l.prior);

  double worst = 0;
  size_t kinks = 0, total = 0;
  for (int k = DY_NET_ENCODER; k <= DY_NET_DECODER; k++)
    dy_fd_check_cnn(dy_fd_baseline_objective, &p, &model, k, g, NPICK, FD_STEP, FD_FLOOR, KINK_FLOOR, KINK_TOL, TOL,
                    k ? "decoder" : "encoder", &worst, &kinks, &total, bad);
  if (type == DY_BASELINE_SDEVAE)
    dy_fd_check_net(dy_fd_baseline_objective, &p, &model, DY_NET_FORCE, g, FD_STEP, FD_FLOOR, KINK_FLOOR, KINK_TOL,
                    TOL, "force", &worst, &kinks, &total, bad);
  if (kinks * 2 > total) {
    printf("  FAIL %zu of %zu values on kinks, too many to trust the check\n", kinks, total);
    *bad = 1;
  }
  printf("  worst relative error %.2e\n", worst);
  free(g);
  dy_fd_baseline_destroy(&p, &nets);
  return worst;
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  int bad = 0;
  double worst = 0;
  worst = fmax(worst, check_case(DY_BASELINE_VAE, 1, 1, 32, 8, 2, 2, 1.7, 35, &bad));
  worst = fmax(worst, check_case(DY_BASELINE_SWAE, 2, 1, 32, 5, 3, 3, 3.0, 32, &bad));
  worst = fmax(worst, check_case(DY_BASELINE_SDEVAE, 1, 1, 48, 6, 2, 2, 1.5, 33, &bad));
  printf("worst relative error %.3e (tolerance %.1e): %s\n", worst, TOL, bad ? "FAIL" : "ok");
  PetscCall(PetscFinalize());
  return bad ? 1 : 0;
}
