/* The baseline models of SPEC section 11 (model.type = "vae", "swae", "sdevae"): the autoencoders
 * the method is compared with, with the losses and defaults of the method authors' reference code.
 * They reuse DynamicsAE's networks (nn/dy_model.h), the MLPs or the image nets of model.network =
 * "conv" (nn/dy_convnet.h, whose last, linear encoder layer then gives the 2 d outputs), with
 * another use of them:
 *
 *   vae     beta-VAE on single frames x0. The encoder gives 2 d outputs, a mean mu and a
 *           log-variance s of a diagonal Gaussian posterior; the decoder sees a sample
 *           z = mu + exp(s / 2) eps, eps standard normal. Per frame the loss is
 *             |y0 - dec(z)|^2 + beta KL,  KL = sum_i (mu_i^2 + exp(s_i) - 1 - s_i) / 2,
 *           the KL divergence to a standard normal prior, averaged over the batch.
 *   swae    sliced-Wasserstein autoencoder on single frames x0. The encoder gives d outputs z; the
 *           decoder sees them as they are. The regulariser is the squared sliced 2-Wasserstein
 *           distance between the batch of z and as many samples u of the prior, uniform on
 *           [-1, 1]^d: along each of L unit directions theta the two sets are projected and sorted,
 *           and the squared differences of equal ranks are averaged over ranks and directions
 *           (dy_sw_loss of nn/dy_nn.h). Loss: mean |y0 - dec(z)|^2 + beta SW.
 *   sdevae  SDE-VAE on pairs (x0, x1): both frames go through the VAE encoder and decoder as above
 *           (reconstruction errors of both frames added), and the prior of the pair's latent is a
 *           Gaussian chain: z0 ~ N(0, 1/nu) per component, z1 | z0 ~ N(z0 + f(z0), 1) with f the
 *           force net (tanh MLP, the model.prior widths) evaluated at the mean mu0. The KL term per
 *           pair, with the posterior variances propagated as in the reference (the chain's mean
 *           taken at the means), is
 *             sum_i [ nu (mu0^2 + exp(s0)) + ln(1/nu) + exp(s0) + exp(s1) + (mu1 - mu0 - f)^2
 *                     - 2 - s0 - s1 ] / 2.
 *           Loss: mean over pairs of the two reconstruction errors + beta KL.
 *
 * Nets used: encoder and decoder for all three, the force net for sdevae; the others are absent
 * (DyModelShape.nhidden = -1), so the parameter buffer holds only what is trained. The latent of
 * the results (dy_model_encode) is the encoder's mean (z for swae).
 *
 * The random inputs of a step are drawn by the caller ("noise", dy_baseline_noise_rows rows of d):
 * vae B standard normals (one per frame), sdevae 2B (x0's frames, then x1's), swae the B prior
 * samples u. The losses reported: rec (the reconstruction term), sw (swae's SW), prior (the KL of
 * vae and sdevae), each without beta; the gradients are those of rec + beta (sw or prior). */
#pragma once
#include "nn/dy_model.h"

typedef enum { DY_BASELINE_NONE = 0, DY_BASELINE_VAE = 1, DY_BASELINE_SWAE = 2, DY_BASELINE_SDEVAE = 3 } DyBaselineType;

typedef struct {
  DyBaselineType type; /* which model */
  double beta;         /* weight of the regulariser (loss.beta) */
  double nu;           /* sdevae: precision of the prior of z0 (loss.nu) */
} DyBaselineOptions;

/* The type named by model.type, DY_BASELINE_NONE for other names ("dynamicsae", "tica"). */
DyBaselineType dy_baseline_from_name(const char *name);
/* Adjusts a DynamicsAE shape to the baseline: encoder outputs (2 d with a Gaussian posterior), the
 * prior nets it does not have made absent. Nothing for DY_BASELINE_NONE. */
void dy_baseline_shape(DyBaselineType type, DyModelShape *shape);
/* Rows of d values of a step's noise for B pairs. */
int dy_baseline_noise_rows(DyBaselineType type, int B);
/* Whether the model is trained on pairs (sdevae) rather than on the first frames alone. */
int dy_baseline_uses_pairs(DyBaselineType type);

/* Workspace of one step, for batches of up to B pairs and L projections (one allocation). It uses
 * `nets` (a workspace of the same model for B pairs, borrowed: it must outlive this one). */
typedef struct DyBaseWork DyBaseWork;
PetscErrorCode dy_basework_create(const DyModel *model, DyWork *nets, int B, int L, DyBaseWork **work);
void dy_basework_destroy(DyBaseWork **work);

/* The step in three phases, as DynamicsAE's (dy_model_forward / dy_model_sw / dy_model_backward)
 * so that a batch spread over ranks works the same way:
 *   1. dy_baseline_forward: the nets forward on B rows, rec and the KL as sums over the rows
 *      divided by norm (B for a batch of its own, the global batch size for a share of it), with
 *      want_grad their gradients scaled alike;
 *   2. swae only, the sliced Wasserstein: dy_baseline_sw on these rows, or by the caller on a larger
 *      batch through dy_baseline_moves, adding beta d(SW)/dz of these rows into gz;
 *   3. dy_baseline_backward: overwrites model->grads. */
void dy_baseline_forward(DyModel *model, DyBaseWork *work, const DyBaselineOptions *opt, int B, const dy_real *x0,
                         const dy_real *x1, const dy_real *y0, const dy_real *y1, const dy_real *noise, double norm,
                         int want_grad, DyLosses *losses);
/* swae: the last forward's latent z and prior samples u (B, d), and gz (B, d), zeroed by it. */
void dy_baseline_moves(DyBaseWork *work, const dy_real **z, const dy_real **u, dy_real **gz);
/* swae: SW of the last forward's B rows with projections theta (L, d); with want_grad adds beta
 * times its gradient into gz. Returns SW. */
double dy_baseline_sw(DyBaseWork *work, int B, int L, const dy_real *theta, const DyBaselineOptions *opt,
                      int want_grad);
void dy_baseline_backward(DyModel *model, DyBaseWork *work, int B);

/* The whole step on one batch of its own (norm = B): losses and model->grads. theta is read by
 * swae only (may be NULL for the others). */
void dy_baseline_loss_grad(DyModel *model, DyBaseWork *work, const DyBaselineOptions *opt, int B, int L,
                           const dy_real *x0, const dy_real *x1, const dy_real *y0, const dy_real *y1,
                           const dy_real *theta, const dy_real *noise, DyLosses *losses);
/* Losses only. */
void dy_baseline_losses(DyModel *model, DyBaseWork *work, const DyBaselineOptions *opt, int B, int L,
                        const dy_real *x0, const dy_real *x1, const dy_real *y0, const dy_real *y1,
                        const dy_real *theta, const dy_real *noise, DyLosses *losses);

/* The kernels, on (n, d) arrays; backward kernels ADD into their gradient outputs.
 * Gaussian posterior sample z = mu + exp(s / 2) eps, mu and s the columns [0, d) and [d, 2d) of the
 * encoder outputs o (n, 2d). */
void dy_gauss_sample(int n, int d, const dy_real *o, const dy_real *eps, dy_real *z);
/* Its backward: do (n, 2d) += the gradient through the sample of gz (n, d). */
void dy_gauss_sample_backward(int n, int d, const dy_real *o, const dy_real *eps, const dy_real *gz, dy_real *dout);
/* sum over rows and i of (mu^2 + exp(s) - 1 - s) / 2; with dout non-NULL adds scale times its
 * gradient into dout (n, 2d). */
double dy_gauss_kl(int n, int d, const dy_real *o, double scale, dy_real *dout);
/* sdevae's KL, summed over the B pairs, from the encoder outputs o (2B, 2d) (x0's rows, then
 * x1's) and the force f (B, d) at mu0. With dout non-NULL adds scale times its gradient into
 * dout (2B, 2d) and into df (B, d). */
double dy_sde_kl(int B, int d, double nu, const dy_real *o, const dy_real *f, double scale, dy_real *dout,
                 dy_real *df);
