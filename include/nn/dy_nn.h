/* Numeric kernels of the networks and losses: plain functions on dy_real arrays plus sizes, each
 * forward next to its backward. Backward kernels ADD into their gradient outputs.
 *
 * Sizes: n rows (batch-major: row r of an (n, w) array is contiguous), in/out layer widths,
 *        B pairs, L projections, d latent dimension.
 * No MPI, no I/O, no allocation. */
#pragma once
#include "base/dy_common.h"

#include <stddef.h>

/* --- linear layer: Y (n, out) = act(X (n, in) W^T + b) --------------------------------------- */

/* How a product's result r is stored into its output c. Forward (no H): SET c = r, ADD c += r,
 * RELU c = max(r, 0), TANH c = tanh(r). Backward to a layer input through its activation (with H,
 * the activation's output): RELU c = r [H > 0], TANH c = r (1 - H^2); SET and ADD as forward. */
typedef enum { DY_EPI_SET = 0, DY_EPI_ADD = 1, DY_EPI_RELU = 2, DY_EPI_TANH = 3 } DyEpilogue;

/* Y = act(X W^T + b) with the torch-layout W (out, in) and its transpose WT (in, out), both given
 * so that the kernel can run along whichever is contiguous; b may be NULL (no bias, e.g. for
 * tangent rows). */
void dy_linear_forward(int n, int in, int out, const dy_real *X, const dy_real *W, const dy_real *WT, const dy_real *b,
                       DyEpilogue act, dy_real *Y);
/* dX (n, in) = mode(dY (n, out) W (out, in)), WT as above: with mode ADD it accumulates; with
 * RELU or TANH, H (n, in) is the layer input (output of the previous activation) and the result is
 * the gradient of that activation's input. When db is non-NULL, the column sums of the stored dX
 * are added into db (in): with RELU or TANH, the previous layer's bias gradient, at no extra pass. */
void dy_linear_backward_input(int n, int in, int out, const dy_real *dY, const dy_real *W, const dy_real *WT,
                              const dy_real *H, DyEpilogue mode, dy_real *dX, dy_real *db);
/* dW (out, in) += dY^T X. */
void dy_linear_backward_weight(int n, int in, int out, const dy_real *X, const dy_real *dY, dy_real *dW);
/* db (out) += column sums of dY (n, out). */
void dy_linear_backward_bias(int n, int out, const dy_real *dY, dy_real *db);
/* WT (in, out) = W (out, in) transposed. */
void dy_transpose(int out, int in, const dy_real *W, dy_real *WT);

/* --- tanh and its forward-mode tangents (in place on (n, w) arrays) ---------------------------- */

/* H = tanh(H) for m values (the kernel the TANH epilogue uses). */
void dy_tanh_forward(size_t m, dy_real *H);
/* X = exp(X) for m values (single precision: ~1 ulp, without libm in the vector part). */
void dy_exp_forward(size_t m, dy_real *X);

/* Forward-mode tangents through a tanh layer. The primal rows Hp (B, w) hold tanh(A) already;
 * A_T holds ntan blocks of B tangent rows (ntan B, w) of the pre-activation tangents, or with bcast
 * one row per block (ntan, w) that stands for all B rows of the block (a first layer seeded with
 * unit vectors: the columns of W, i.e. rows of W^T). T gets the post-activation tangents
 * (1 - Hp^2) * A_T, (ntan B, w). */
void dy_tanh_tangent_forward(int B, int w, int ntan, const dy_real *Hp, const dy_real *A_T, int bcast, dy_real *T);
/* Backward of the tanh on the primal rows together with dy_tanh_tangent_forward (same A_T and
 * bcast): on entry dHp (B, w) and dT (ntan B, w) are gradients of the layer outputs; on exit they
 * are the gradients of the pre-activations (primal and tangent). */
void dy_tanh_tangent_backward(int B, int w, int ntan, const dy_real *Hp, const dy_real *A_T, int bcast, dy_real *dHp,
                              dy_real *dT);

/* --- losses ------------------------------------------------------------------------------------ */

/* Sum over rows of |Yhat - Y|^2 for Yhat, Y (n, w); when dYhat is non-NULL adds scale 2 (Yhat - Y). */
double dy_sqerr_loss(int n, int w, const dy_real *Yhat, const dy_real *Y, double scale, dy_real *dYhat);

/* Workspace of dy_sw_loss in bytes for B pairs, L projections, latent dimension d. */
size_t dy_sw_work_bytes(int B, int L, int d);
/* Sliced Wasserstein of one bin: 1/(L B) sum_l sum_n (a_(n) - b_(n))^2 with a = theta_l . dz,
 * b = theta_l . dzp, each sorted. theta (L, d), dz and dzp (B, d). When gdz is non-NULL adds
 * scale d/d(dz) into gdz (B, d) (dzp is a constant). work: dy_sw_work_bytes(B, L, d) bytes, 64-aligned. */
double dy_sw_loss(int L, int B, int d, const dy_real *theta, const dy_real *dz, const dy_real *dzp, double scale,
                  dy_real *gdz, void *work);

/* Prior moves from f, g, M = exp(g), J = dg_i/dz_i (all (B, d), at z0) and eps (B, d):
 * constant diffusion (learned == 0): dzp = f + sqrt(2) eps;
 * learned: dzp = M f + M J + sqrt(2 M) eps. */
void dy_prior_sample(int B, int d, int learned, const dy_real *f, const dy_real *g, const dy_real *M, const dy_real *J,
                     const dy_real *eps, dy_real *dzp);
/* Negative log-likelihood of the moves: sum over n and i of 1/2 [g + (dz - M f - M J)^2 / (2 M)]
 * with M = exp(g) given (the caller divides by B). When df is non-NULL adds scale times the
 * gradients with respect to f, g and J into df, dg, dJ (all (B, d)). */
double dy_prior_nll(int B, int d, const dy_real *dz, const dy_real *f, const dy_real *g, const dy_real *M,
                    const dy_real *J, double scale, dy_real *df, dy_real *dg, dy_real *dJ);
