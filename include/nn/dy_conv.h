/* Two-dimensional convolutions of the image networks: a convolution and a transposed convolution
 * with square kernels, each forward next to its backward, built on the linear-layer products of
 * dy_nn.h (im2col / col2im around them; see src/nn/conv.c for why not a direct loop).
 *
 * Layouts are PyTorch's:
 *   images, batch-major NCHW: image i, channel c, row y, column x at ((i C + c) H + y) W + x;
 *   convolution weight (out, in, k, k), transposed-convolution weight (in, out, k, k), bias (out).
 * Semantics (torch.nn.Conv2d / ConvTranspose2d, no dilation, no groups, no output padding):
 *   convolution   Y[o, y, x] = b[o] + sum_{c, u, v} W[o, c, u, v] X[c, s y - p + u, s x - p + v],
 *                 terms outside the input being zero; Hout = (Hin + 2p - k) / s + 1;
 *   transposed    Y[o, s y - p + u, s x - p + v] += W[c, o, u, v] X[c, y, x] over all c, y, x, u, v
 *                 whose target lies inside the output, plus b[o]; Hout = (Hin - 1) s - 2p + k.
 *   The transposed convolution is the adjoint (input gradient) of the convolution with the same
 *   k, s, p from the larger image to the smaller one.
 * The kernels themselves (the _hwc functions) take channel-last images, image i, row y, column x,
 * channel c at ((i H + y) W + x) C + c, which is the "rows layout" of their products, and the
 * weight with its trailing dimensions reordered from (C, k, k) to (k, k, C) (dy_conv_weight_hwc),
 * with its transpose WpT: the weight seen as a matrix (first dimension, rest), transposed, as
 * dy_transpose(dy_conv_weight_rows, rest, Wp, WpT) gives it. The torch-layout functions convert
 * one chunk of images at a time and the weight in their workspace; the image networks keep their
 * activations channel-last and call the kernels directly.
 * Workspace: dy_conv_work_len values, 64-byte aligned, per call; no allocation here. */
#pragma once
#include "base/dy_common.h"
#include "nn/dy_nn.h"

#include <stddef.h>

/* Geometry of one layer. For a transposed convolution (transposed = 1), cin/hin/win are its input
 * (the small image) and cout/hout/wout its output (the large one). */
typedef struct {
  int cin, hin, win;    /* input channels, rows, columns */
  int cout, hout, wout; /* output channels, rows, columns */
  int k, stride, pad;   /* square kernel size, stride, zero padding on every side */
  int transposed;       /* 0: convolution, 1: transposed convolution */
} DyConv;

/* Sets the geometry and the output size; returns 0, or -1 when the sizes do not fit (output
 * smaller than 1 pixel, or non-positive sizes). */
int dy_conv_setup(DyConv *c, int transposed, int cin, int hin, int win, int cout, int k, int stride, int pad);
/* Values of the weight (k k cin cout) and of the bias (cout). */
size_t dy_conv_weight_len(const DyConv *c);
/* Values per image of the input and of the output. */
size_t dy_conv_in_len(const DyConv *c);
size_t dy_conv_out_len(const DyConv *c);
/* Rows of the weight seen as a matrix: cout for a convolution, cin for a transposed one. */
int dy_conv_weight_rows(const DyConv *c);
/* Workspace, in values for any number of images: of the torch-layout functions, and of the
 * channel-last kernels alone. */
size_t dy_conv_work_len(const DyConv *c);
size_t dy_conv_hwc_work_len(const DyConv *c);

/* Torch layouts. Y (n, out image) = act(layer(X (n, in image))) with act SET or RELU (max(., 0)). */
void dy_conv_forward(const DyConv *c, int n, const dy_real *X, const dy_real *W, const dy_real *b, DyEpilogue act,
                     dy_real *Y, dy_real *work);
/* Gradients from dY (n, out image), the gradient of the layer's output before any activation:
 * dX (n, in image) += dY dlayer/dX; dW += ...; db += .... X is the forward's input. */
void dy_conv_backward(const DyConv *c, int n, const dy_real *X, const dy_real *dY, const dy_real *W, dy_real *dX,
                      dy_real *dW, dy_real *db, dy_real *work);

/* The same on channel-last images with the reordered weight Wp and its transpose WpT; dWp, the
 * weight's gradient, is added in the reordered layout too. */
void dy_conv_forward_hwc(const DyConv *c, int n, const dy_real *X, const dy_real *Wp, const dy_real *WpT,
                         const dy_real *b, DyEpilogue act, dy_real *Y, dy_real *work);
void dy_conv_backward_hwc(const DyConv *c, int n, const dy_real *X, const dy_real *dY, const dy_real *Wp,
                          const dy_real *WpT, dy_real *dX, dy_real *dWp, dy_real *db, dy_real *work);

/* Wp = W with its trailing (C, k, k) reordered to (k, k, C); dW += dWp reordered back. */
void dy_conv_weight_hwc(const DyConv *c, const dy_real *W, dy_real *Wp);
void dy_conv_weight_grad_add(const DyConv *c, const dy_real *dWp, dy_real *dW);
/* Per row r < rows: dst (b, a) = src (a, b) transposed, with the add variant dst (b, a) += src^T.
 * Images (n, C, H W) to channel-last are dy_swap_inner(n, C, H W, ...); back, (n, H W, C). */
void dy_swap_inner(size_t rows, int a, int b, const dy_real *src, dy_real *dst);
void dy_swap_inner_add(size_t rows, int a, int b, const dy_real *src, dy_real *dst);

/* dH[i] = dH[i] [H[i] > 0] over m values: the gradient through a ReLU whose output is H. */
void dy_relu_backward(size_t m, const dy_real *H, dy_real *dH);
