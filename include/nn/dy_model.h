/* The four networks of DynamicsAE, their parameters, and one training step's losses and gradients.
 *
 * Sizes, used throughout:
 *   D  input features per frame        Dy  decoder output features (D, or the target's)
 *   d  latent dimension                B   pairs in a batch
 *   L  projections of the sliced-Wasserstein loss
 *
 * Parameter layout (shared with tools/torch_oracle.py, checkpoints and the allreduce):
 *   one contiguous buffer, nets in the order encoder, decoder, force, log-diffusion; within a net,
 *   layer by layer, the weight W (out, in) row-major as torch.nn.Linear stores it, then its bias
 *   b (out); with model.network = "conv" the encoder and decoder are the image nets of
 *   dy_convnet.h, whose parameters fill the same ranges in that header's layout. The representation nets (encoder, decoder) come first, so the representation
 *   optimiser owns params[0, nparam_rep) and the prior optimiser params[nparam_rep, nparam).
 *   Gradients and both Adam moments use the same layout. */
#pragma once
#include "base/dy_common.h"
#include "base/dy_rng.h"
#include "nn/dy_convnet.h"

#include <stddef.h>

#define DY_MAX_LAYERS 16 /* linear layers per net */

typedef enum { DY_ACT_RELU = 0, DY_ACT_TANH = 1 } DyActivation;

typedef enum { DY_NET_ENCODER = 0, DY_NET_DECODER = 1, DY_NET_FORCE = 2, DY_NET_LOGDIFF = 3, DY_NNETS = 4 } DyNetId;

/* One multilayer perceptron: hidden layers use `act`, the last layer is linear. */
typedef struct {
  int nlayer;                  /* number of linear layers (hidden widths + 1) */
  int dims[DY_MAX_LAYERS + 1]; /* dims[0] inputs ... dims[nlayer] outputs */
  DyActivation act;            /* activation after every layer but the last */
  size_t offset;               /* first parameter of this net in the model buffer */
  size_t nparam;               /* number of parameters of this net */
} DyMlp;

typedef struct {
  int D, Dy, d;            /* input features, decoder outputs, latent dimension */
  DyMlp net[DY_NNETS];     /* encoder, decoder, force, log-diffusion */
  DyNetwork network;       /* encoder and decoder: MLPs, or the image nets cnn[] (dims[] then keep the widths) */
  DyCnn cnn[2];            /* image encoder and decoder (network DY_NETWORK_CONV) */
  size_t nparam;           /* all parameters */
  size_t nparam_rep;       /* encoder + decoder parameters: params[0, nparam_rep) */
  dy_real *params;         /* (nparam) */
  dy_real *grads;          /* (nparam) written by dy_model_loss_grad, dy_model_backward */
} DyModel;

/* Shape of a model: hidden widths of each net (the last, linear layer is added). */
typedef struct {
  int D, Dy, d;                            /* input features, decoder outputs, latent dimension */
  int nhidden[DY_NNETS];                   /* hidden layers of each net (0 allowed; -1: the net is absent,
                                            * no layers and no parameters, as in the baselines) */
  int hidden[DY_NNETS][DY_MAX_LAYERS - 1]; /* their widths */
  DyActivation act;                        /* hidden activation of encoder and decoder (0: ReLU) */
  int enc_out;                             /* encoder outputs; 0: d. The baselines with a Gaussian
                                            * posterior (nn/dy_baseline.h) use 2 d: mean, log-variance */
  DyNetwork network;                       /* DY_NETWORK_CONV: image nets, D = channels 64 64, Dy = Cy 64 64,
                                            * one hidden width each for encoder and decoder (act unused) */
  int channels;                            /* input image channels (conv) */
} DyModelShape;

/* Allocates params and grads (zeroed) for the shape, each net with its own entry of it (the
 * configuration gives force and log-diffusion the same `prior` widths): encoder and decoder with
 * shape->act (model.activation), force and log-diffusion with tanh. Checks the sizes (PETSC_ERR_ARG_OUTOFRANGE). */
PetscErrorCode dy_model_create(const DyModelShape *shape, DyModel *model);
/* PyTorch's default Linear initialisation: W and b uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)],
 * nets in layout order, within a layer W (row-major) then b, from rng. */
void dy_model_init(DyModel *model, DyRng *rng);
void dy_model_destroy(DyModel *model);
/* Moves the latent to z' = a (z - m) (a > 0, m (d)) without changing what the autoencoder
 * computes: the encoder gives a (z - m) and the decoder maps z' where it mapped z, so that
 * decode(encode(x)) stays the same up to rounding. A ReLU encoder (positively homogeneous) shares
 * the factor out over its L layers, each weight times a^(1/L) and the biases to match, so that no
 * weight ends up orders of magnitude from where it was; a tanh encoder's last layer takes it. The
 * decoder's first layer takes 1 / a in its weight (and W m in its bias). An encoder with more than
 * d outputs is not supported. The prior nets are left as they are. */
void dy_model_scale_latent(DyModel *model, double a, const double *m);

/* Activations, gradients of activations and sort buffers of one step (opaque, one allocation).
 * A workspace serves one thread at a time. */
typedef struct DyWork DyWork;
/* Workspace for batches of up to B pairs and L projections. */
PetscErrorCode dy_work_create(const DyModel *model, int B, int L, DyWork **work);
void dy_work_destroy(DyWork **work);
/* Encoder forward only: z (n, d) = phi(x (n, D)). For clustering and results. Works through n in
 * blocks of the workspace's 2B rows, so any n works. An encoder with more than d outputs (a mean
 * and a log-variance) gives its first d: the mean. */
void dy_model_encode(const DyModel *model, DyWork *work, ptrdiff_t n, const dy_real *x, dy_real *z);
/* Decoder forward only: y (n, Dy) = psi(z (n, d)). */
void dy_model_decode(const DyModel *model, DyWork *work, ptrdiff_t n, const dy_real *z, dy_real *y);
/* Force net only: f (n, d) = f(z (n, d)), in blocks of the workspace's B rows. For the fields. */
void dy_model_force(const DyModel *model, DyWork *work, ptrdiff_t n, const dy_real *z, dy_real *f);
/* Log-diffusion net only: g (n, d) = g(z (n, d)); the diffusion is M_ii = exp(g_i). */
void dy_model_logdiff(const DyModel *model, DyWork *work, ptrdiff_t n, const dy_real *z, dy_real *g);

typedef enum { DY_DIFFUSION_CONSTANT = 0, DY_DIFFUSION_LEARNED = 1 } DyDiffusion;

/* What one step computes. */
typedef struct {
  double beta;            /* weight of L_sw in L_rep */
  DyDiffusion diffusion;  /* how the prior moves are sampled */
  /* Targets of the encoder (train.warmup_target), or NULL: (2B, d), the rows of z0 then those of
   * z1; L_target = sum over the 2B rows of |z - target|^2, divided like L_rec. With
   * target_weight 0 the encoder follows L_target alone (the warm-up): its gradient is that of
   * L_target, while the decoder's stays that of L_rec (the latent is an input to it, as in
   * training on fixed inputs), and L_sw is computed but sends no gradient. With target_weight
   * w > 0, w L_target is added to L_rep (an anchor). */
  const dy_real *target;
  double target_weight;
} DyLossOptions;

typedef struct {
  double rec;    /* L_rec */
  double sw;     /* L_sw */
  double prior;  /* L_prior */
  double target; /* L_target (0 without targets) */
} DyLosses;

/* One batch of B pairs: forward and backward of SPEC section 3.
 *   x0, x1 (B, D): the pair's frames; y0, y1 (B, Dy): decoder targets (may equal x0, x1);
 *   theta (L, d): unit projection vectors; eps (B, d): standard normals.
 * Overwrites model->grads with d(L_rep)/d(encoder, decoder) and d(L_prior)/d(force, logdiff)
 * (means over the batch, as in SPEC), and returns the three losses. B and L must not exceed the
 * workspace's. Pure computation: no MPI, no I/O. */
void dy_model_loss_grad(DyModel *model, DyWork *work, int B, int L, const dy_real *x0, const dy_real *x1,
                        const dy_real *y0, const dy_real *y1, const dy_real *theta, const dy_real *eps,
                        const DyLossOptions *opt, DyLosses *losses);

/* The same step in three phases, for a batch whose rows are spread over ranks (the caller does
 * the communication between them; this floor has none):
 *   1. dy_model_forward: all nets forward on this caller's B rows, the moves dz and the prior
 *      moves dzp, L_rec and L_prior as sums over the B rows divided by `norm` (B for a batch of
 *      its own; the global batch size when the rows are a share of it, so that the shares' losses
 *      and gradients add up to those of the whole batch), and with want_grad their gradients
 *      with respect to the nets' outputs, also scaled by 1/norm. losses->sw is set to 0.
 *   2. the sliced Wasserstein: dy_model_sw on the B rows alone, or by the caller on a larger
 *      batch through dy_work_moves, writing beta d(L_sw)/d(dz) of these rows into gdz (B, d)
 *      (zeroed by the forward);
 *   3. dy_model_backward: overwrites model->grads from the gradients of phases 1 and 2.
 * Each phase works on the arrays the one before left in the workspace (no other call between). */
void dy_model_forward(DyModel *model, DyWork *work, int B, const dy_real *x0, const dy_real *x1, const dy_real *y0,
                      const dy_real *y1, const dy_real *eps, const DyLossOptions *opt, double norm, int want_grad,
                      DyLosses *losses);
/* The last forward's moves dz and prior moves dzp (B, d), and the gradient gdz (B, d) to fill. */
void dy_work_moves(DyWork *work, const dy_real **dz, const dy_real **dzp, dy_real **gdz);
/* L_sw of the last forward's B rows with projections theta (L, d); with want_grad adds beta times
 * its gradient into gdz. Returns L_sw. */
double dy_model_sw(DyWork *work, int B, int L, const dy_real *theta, const DyLossOptions *opt, int want_grad);
void dy_model_backward(DyModel *model, DyWork *work, int B);

/* Intermediate arrays of the last dy_model_loss_grad / dy_model_losses call on this workspace,
 * for parity tests and diagnostics; valid until the next call of any kind (encode and decode
 * included) with it. */
typedef struct {
  const dy_real *z0, *z1; /* (B, d) encoder outputs */
  const dy_real *dz;      /* (B, d) z1 - z0 */
  const dy_real *y0hat;   /* (B, Dy) decoder(z0); decoder(z1) follows it, (2B, Dy) in all */
  const dy_real *f;       /* (B, d) force at z0 */
  const dy_real *g;       /* (B, d) log-diffusion at z0 */
  const dy_real *dgdz;    /* (B, d) dg_i/dz_i at z0 */
  const dy_real *dzp;     /* (B, d) prior moves used by L_sw */
} DyStepView;
void dy_work_view(const DyModel *model, const DyWork *work, int B, DyStepView *view);
/* Makes later calls use these prior moves dzp (B, d) instead of sampling them (gradient checks
 * need them fixed); NULL restores sampling. The array must outlive its use. */
void dy_work_set_prior_moves(DyWork *work, const dy_real *dzp);

/* Losses only (no gradients), e.g. for test pairs. Same arguments. */
void dy_model_losses(DyModel *model, DyWork *work, int B, int L, const dy_real *x0, const dy_real *x1,
                     const dy_real *y0, const dy_real *y1, const dy_real *theta, const dy_real *eps,
                     const DyLossOptions *opt, DyLosses *losses);

/* One net on its own, for models assembled outside this file (nn/dy_baseline.h). Call
 * dy_model_net_prepare after every change of the parameters and before the nets' forwards. The
 * forward of net k runs n rows of `in` (dims[0] columns, kept by pointer until the backward) through
 * it, at most the rows the workspace holds for that net (2B for encoder and decoder, B for the
 * prior nets), and returns its outputs (n, dims[nlayer]), valid until the net's next forward. The
 * backward takes the gradient of those outputs (dout, destroyed; not the workspace's own memory),
 * ADDS the parameter gradients into model->grads, and with dinput non-NULL adds the gradient of the
 * inputs into dinput (n, dims[0]). */
void dy_model_net_prepare(const DyModel *model, DyWork *work);
const dy_real *dy_model_net_forward(const DyModel *model, DyWork *work, int k, int n, const dy_real *in);
void dy_model_net_backward(DyModel *model, DyWork *work, int k, int n, dy_real *dout, dy_real *dinput);

/* Adam over one contiguous range of parameters (beta1 0.9, beta2 0.999, eps 1e-8, PyTorch's
 * formulation with bias correction). Each optimiser has its own step count. */
typedef struct {
  double lr;       /* learning rate */
  int64_t step;    /* updates done so far */
  size_t offset;   /* first parameter owned */
  size_t n;        /* parameters owned */
  dy_real *m, *v;  /* (n) first and second moments */
} DyAdam;

PetscErrorCode dy_adam_create(size_t offset, size_t n, double lr, DyAdam *adam);
/* Zeroes the moments and the step count (the encoder/decoder optimiser restarts after warm-up). */
void dy_adam_reset(DyAdam *adam);
/* params[offset + i] -= update from grads[offset + i]; increments step. */
void dy_adam_update(DyAdam *adam, dy_real *params, const dy_real *grads);
void dy_adam_destroy(DyAdam *adam);
