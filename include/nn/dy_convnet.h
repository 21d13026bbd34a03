/* The image encoder and decoder of model.network = "conv" (SPEC section 11): chains of
 * convolutions (dy_conv.h) and linear layers (dy_nn.h) on frames of C x 64 x 64 pixels stored
 * as C*64*64 features in torch's (C, H, W) order.
 *
 * Encoder, width e (model.encoder = [e], e a multiple of 16):
 *   image (C, 64, 64)
 *   -> conv 4x4, stride 2, padding 1, C -> 32, ReLU       (32, 32, 32)
 *   -> conv 4x4, stride 2, padding 1, 32 -> 32, ReLU      (32, 16, 16)
 *   -> conv 4x4, stride 2, padding 1, 32 -> 64, ReLU      (64, 8, 8)
 *   -> conv 4x4, stride 2, padding 1, 64 -> 64, ReLU      (64, 4, 4)
 *   -> conv 1x1, 64 -> e/16, ReLU                         (e/16, 4, 4), read as e features in
 *                                                         (channel, row, column) order
 *   -> linear e -> d (no activation); the baselines with a Gaussian posterior (dy_baseline.h)
 *      build it with 2 d outputs, the mean and the log-variance, as the reference's VAEs do.
 * Decoder, width h (model.decoder = [h]), Cy output channels:
 *   z (d) -> linear d -> h, ReLU -> linear h -> 1024, ReLU, read as (64, 4, 4)
 *   -> transposed conv 4x4, stride 2, padding 1, 64 -> 64, ReLU   (64, 8, 8)
 *   -> transposed conv 4x4, stride 2, padding 1, 64 -> 32, ReLU   (32, 16, 16)
 *   -> transposed conv 4x4, stride 2, padding 1, 32 -> 32, ReLU   (32, 32, 32)
 *   -> transposed conv 4x4, stride 2, padding 1, 32 -> Cy         (Cy, 64, 64), no activation.
 * This is the architecture of the method's reference code (its conv_encoder / deconv_decoder),
 * including the ReLU after the 1x1 convolution.
 *
 * Parameters of a net: layer by layer in the order above, each layer's weight in torch layout
 * (conv (out, in, k, k), transposed conv (in, out, k, k), linear (out, in)) followed by its bias.
 * Initialisation as torch's default: weight and bias uniform in +-1/sqrt(fan_in), fan_in being
 * in k k for a convolution and a linear layer (k = 1) and, as torch computes it from the weight's
 * second dimension, out k k for a transposed convolution. */
#pragma once
#include "base/dy_common.h"
#include "base/dy_rng.h"
#include "nn/dy_conv.h"

#include <stddef.h>

#define DY_CNN_SIDE 64      /* image rows and columns */
#define DY_CNN_MAX_LAYERS 8 /* layers of one image net */

typedef enum { DY_NETWORK_MLP = 0, DY_NETWORK_CONV = 1 } DyNetwork;

/* One layer: a linear layer (conv.k == 0: in -> out features) or a (transposed) convolution. */
typedef struct {
  DyConv conv;      /* geometry; k = 0 for a linear layer */
  int in, out;      /* features per row of the input and of the output */
  size_t woff;      /* offset of the weight within the net's parameters; the bias follows */
  size_t nw, nb;    /* values of the weight and of the bias */
  double bound;     /* initialisation bound 1/sqrt(fan_in) */
  DyEpilogue act;   /* DY_EPI_RELU or DY_EPI_SET */
  /* Activations between convolutions are channel-last (dy_conv.h), so the kernels see a weight
   * whose columns are reordered from (pc, ps) blocks to (ps, pc) (a convolution's trailing (C, k,
   * k); a linear layer reading a convolution's output as (C, H W)), or whose rows and bias are
   * reordered from (qc, qs) to (qs, qc) (a linear layer feeding a convolution); 0: not reordered. */
  int pc, ps, qc, qs;
} DyCnnLayer;

typedef struct {
  int nlayer;
  DyCnnLayer layer[DY_CNN_MAX_LAYERS];
  size_t nparam;    /* parameters of the net */
  size_t maxfeat;   /* widest layer output per row */
  size_t maxwork;   /* largest convolution workspace (values) */
  size_t maxlayer;  /* most parameters of one layer */
} DyCnn;

/* The encoder for C input channels, width e, d outputs; the decoder for latent
 * dimension d, width h, Cy output channels. Return 0, or -1 when a size does not fit (e not a
 * positive multiple of 16, non-positive sizes). */
int dy_cnn_encoder(DyCnn *net, int C, int e, int d);
int dy_cnn_decoder(DyCnn *net, int d, int h, int Cy);

/* Torch's default initialisation of the net's parameters p (nparam), layer by layer, weight then
 * bias, each uniform in +-bound, from rng. */
void dy_cnn_init(const DyCnn *net, dy_real *p, DyRng *rng);

/* Activations of one net for up to `rows` rows (opaque, one allocation). */
typedef struct DyCnnWork DyCnnWork;
/* Bytes of the workspace, and its creation in `mem` of that many bytes (64-byte aligned). */
size_t dy_cnn_work_bytes(const DyCnn *net, int rows);
DyCnnWork *dy_cnn_work_init(const DyCnn *net, int rows, void *mem);

/* Y (n, out) = net(X (n, in)) with n up to the workspace's rows; keeps the activations (and X,
 * not copied: it must stay valid until the backward) for dy_cnn_backward. */
void dy_cnn_forward(const DyCnn *net, DyCnnWork *w, const dy_real *p, int n, const dy_real *X, dy_real *Y);
/* Backward of the last forward: dY (n, out) the gradient of its outputs; adds the parameter
 * gradients into g (nparam) and, when dX is non-NULL, the input gradient into dX (n, in). */
void dy_cnn_backward(const DyCnn *net, DyCnnWork *w, const dy_real *p, int n, const dy_real *dY, dy_real *g,
                     dy_real *dX);
