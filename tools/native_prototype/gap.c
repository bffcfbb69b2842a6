// What a native CPU kernel would gain on CNN-GAP 8x8 (issue 15; docs/performance.md, 2026-12-08 Zen 5 host): the
// harness's recursion (Conv 3x3 SAME + ReLU) x depth, GlobalAvgPool, Dense; NNGP + NTK, float64, P pairs last, with
// ONE loop per layer (both stencils, the angle, both outputs), which XLA:CPU cannot emit (no multi-output loop
// fusion: the harness runs four loops a layer). The arc-cosine is the harness's (harness/nets/_kernel_math.py:
// fdlibm's half-angle step, the same degree-12 polynomial by Estrin's scheme), in AVX-512 intrinsics.
// A measurement tool, not a code path of the harness: python3 tools/native_prototype/measure.py.
// Borders of K, T, K2, T2 (B^4 P doubles each) are zero from the caller; interiors are written before read.
#include <math.h>
#include <string.h>
#include <immintrin.h>
#define H 8
#define B 10   /* bordered side */
#ifndef P
#define P 16
#endif
#define C 3
static const double R[13] = {0.030245387710908973, -0.017034609773823876, 0.018806530720179494, 0.004935183119040707,
  0.010446655112585641, 0.011459620569793945, 0.013973296613001765, 0.017352244380658223,
  0.022372179767990885, 0.030381943948639332, 0.044642857149171274, 0.07499999999996707, 0.1666666666666668};
#define IDX(h, w, g, v) ((((((h) * B + (w)) * B + (g)) * B + (v))) * P)
// x1, x2: [H][H][C][P] (pairs last); out: [P] nngp, [P] ntk. depth layers; w2, b2. scratch: 4 buffers of B^4 P doubles.
void gap_chunk(const double *x1, const double *x2, int depth, double w2, double b2, double *K, double *T, double *K2,
               double *T2, double *out_nngp, double *out_ntk) {
  double v1[B][B][P], v2[B][B][P], nv1[B][B][P], nv2[B][B][P];
  /* K, T, K2, T2: zero borders from the caller, interiors always written before read */
  memset(v1, 0, sizeof v1); memset(v2, 0, sizeof v2); memset(nv1, 0, sizeof nv1); memset(nv2, 0, sizeof nv2);
  for (int h = 0; h < H; h++) for (int w = 0; w < H; w++) for (int q = 0; q < P; q++) {
    double s1 = 0, s2 = 0;
    for (int c = 0; c < C; c++) {
      double a = x1[((h * H + w) * C + c) * P + q], b = x2[((h * H + w) * C + c) * P + q];
      s1 += a * a; s2 += b * b;
    }
    v1[h + 1][w + 1][q] = s1 / C; v2[h + 1][w + 1][q] = s2 / C;
  }
  for (int h = 0; h < H; h++) for (int w = 0; w < H; w++) for (int g = 0; g < H; g++) for (int v = 0; v < H; v++) {
    double *k = K + IDX(h + 1, w + 1, g + 1, v + 1);
    for (int q = 0; q < P; q++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += x1[((h * H + w) * C + c) * P + q] * x2[((g * H + v) * C + c) * P + q];
      k[q] = s / C;
    }
  }
  int track = 0;  /* the input NTK is 0 */
  for (int layer = 0; layer < depth; layer++) {
    /* variances after the conv */
    for (int h = 0; h < H; h++) for (int w = 0; w < H; w++) for (int q = 0; q < P; q++) {
      double s1 = 0, s2 = 0;
      for (int dh = 0; dh < 3; dh++) for (int dw = 0; dw < 3; dw++) { s1 += v1[h + dh][w + dw][q]; s2 += v2[h + dh][w + dw][q]; }
      nv1[h + 1][w + 1][q] = w2 * s1 / 9 + b2; nv2[h + 1][w + 1][q] = w2 * s2 / 9 + b2;
    }
    static double sq1[B][B][P], sq2[B][B][P], is1[B][B][P], is2[B][B][P];
    for (int h = 0; h < B; h++) for (int w = 0; w < B; w++) for (int q = 0; q < P; q++) {
      sq1[h][w][q] = sqrt(nv1[h][w][q]); sq2[h][w][q] = sqrt(nv2[h][w][q]);
      is1[h][w][q] = sq1[h][w][q] > 0 ? 1 / sq1[h][w][q] : 0; is2[h][w][q] = sq2[h][w][q] > 0 ? 1 / sq2[h][w][q] : 0;
    }
    for (int h = 0; h < H; h++) for (int w = 0; w < H; w++) for (int g = 0; g < H; g++) for (int v = 0; v < H; v++) {
      const double *sa = sq1[h + 1][w + 1], *sb = sq2[g + 1][v + 1], *ia = is1[h + 1][w + 1], *ib = is2[g + 1][v + 1];
      double *ko = K2 + IDX(h + 1, w + 1, g + 1, v + 1), *to = T2 + IDX(h + 1, w + 1, g + 1, v + 1);
      const double *kp[9], *tp[9];
      for (int d = 0; d < 9; d++) { long o = IDX(h + d / 3, w + d % 3, g + d / 3, v + d % 3); kp[d] = K + o; tp[d] = T + o; }
      const __m512d vw9 = _mm512_set1_pd(w2 / 9), vb2 = _mm512_set1_pd(b2), one = _mm512_set1_pd(1.0),
          half = _mm512_set1_pd(0.5), zero = _mm512_setzero_pd(), inv2pi = _mm512_set1_pd(0.5 / M_PI),
          vpi = _mm512_set1_pd(M_PI);
      for (int q = 0; q < P; q += 8) {
        __m512d sk = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(kp[0] + q), _mm512_loadu_pd(kp[1] + q)),
                                                 _mm512_add_pd(_mm512_loadu_pd(kp[2] + q), _mm512_loadu_pd(kp[3] + q))),
                                   _mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(kp[4] + q), _mm512_loadu_pd(kp[5] + q)),
                                                 _mm512_add_pd(_mm512_loadu_pd(kp[6] + q), _mm512_loadu_pd(kp[7] + q))));
        sk = _mm512_add_pd(sk, _mm512_loadu_pd(kp[8] + q));
        __m512d k = _mm512_fmadd_pd(vw9, sk, vb2), t = k;
        if (track) {
          __m512d st = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(tp[0] + q), _mm512_loadu_pd(tp[1] + q)),
                                                   _mm512_add_pd(_mm512_loadu_pd(tp[2] + q), _mm512_loadu_pd(tp[3] + q))),
                                     _mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(tp[4] + q), _mm512_loadu_pd(tp[5] + q)),
                                                   _mm512_add_pd(_mm512_loadu_pd(tp[6] + q), _mm512_loadu_pd(tp[7] + q))));
          st = _mm512_add_pd(st, _mm512_loadu_pd(tp[8] + q));
          t = _mm512_fmadd_pd(vw9, st, k);
        }
        __m512d nrm = _mm512_mul_pd(_mm512_loadu_pd(sa + q), _mm512_loadu_pd(sb + q));
        __m512d inv = _mm512_mul_pd(_mm512_loadu_pd(ia + q), _mm512_loadu_pd(ib + q));
        __m512d c = _mm512_min_pd(_mm512_max_pd(_mm512_mul_pd(k, inv), _mm512_set1_pd(-1.0)), one);
        __m512d ab = _mm512_abs_pd(c);
        __mmask8 big = _mm512_cmp_pd_mask(ab, half, _CMP_GT_OQ), pos = _mm512_cmp_pd_mask(c, zero, _CMP_GE_OQ);
        __m512d hg = _mm512_max_pd(_mm512_mul_pd(_mm512_sub_pd(one, ab), half), zero);
        __m512d z = _mm512_mask_blend_pd(big, _mm512_mul_pd(ab, ab), hg);
        __m512d sv = _mm512_mask_blend_pd(big, ab, _mm512_sqrt_pd(hg));
        __m512d z2 = _mm512_mul_pd(z, z), z4 = _mm512_mul_pd(z2, z2), z8 = _mm512_mul_pd(z4, z4);
#define C_(i) _mm512_set1_pd(R[i])
        __m512d a0 = _mm512_fmadd_pd(C_(11), z, C_(12)), a1 = _mm512_fmadd_pd(C_(9), z, C_(10)),
                a2 = _mm512_fmadd_pd(C_(7), z, C_(8)), a3 = _mm512_fmadd_pd(C_(5), z, C_(6)),
                a4 = _mm512_fmadd_pd(C_(3), z, C_(4)), a5 = _mm512_fmadd_pd(C_(1), z, C_(2));
        __m512d b0 = _mm512_fmadd_pd(a1, z2, a0), b1 = _mm512_fmadd_pd(a3, z2, a2), b2v = _mm512_fmadd_pd(a5, z2, a4);
        __m512d c0 = _mm512_fmadd_pd(b1, z4, b0), c1 = _mm512_fmadd_pd(C_(0), z4, b2v);
        __m512d pz = _mm512_fmadd_pd(c1, z8, c0);
        __m512d r = _mm512_mul_pd(sv, _mm512_fmadd_pd(z, pz, one));
        __m512d off = _mm512_mask_blend_pd(big, _mm512_set1_pd(M_PI / 2), _mm512_mask_blend_pd(pos, vpi, zero));
        __m512d sl = _mm512_mask_blend_pd(big, _mm512_mask_blend_pd(pos, one, _mm512_set1_pd(-1.0)),
                                          _mm512_mask_blend_pd(pos, _mm512_set1_pd(-2.0), _mm512_set1_pd(2.0)));
        __m512d th = _mm512_fmadd_pd(sl, r, off);
        __m512d kd = _mm512_mul_pd(_mm512_sub_pd(vpi, th), inv2pi);
        __m512d sn = _mm512_sqrt_pd(_mm512_max_pd(_mm512_mul_pd(_mm512_sub_pd(one, c), _mm512_add_pd(one, c)), zero));
        _mm512_storeu_pd(ko + q, _mm512_mul_pd(nrm, _mm512_fmadd_pd(sn, inv2pi, _mm512_mul_pd(kd, c))));
        _mm512_storeu_pd(to + q, _mm512_mul_pd(t, kd));
      }
    }
    track = 1;
    for (int h = 0; h < B; h++) for (int w = 0; w < B; w++) for (int q = 0; q < P; q++) {
      v1[h][w][q] = nv1[h][w][q] * 0.5 * (h > 0 && w > 0 && h < B - 1 && w < B - 1);
      v2[h][w][q] = nv2[h][w][q] * 0.5 * (h > 0 && w > 0 && h < B - 1 && w < B - 1);
    }
    double *t; t = K; K = K2; K2 = t; t = T; T = T2; T2 = t;
  }
  for (int q = 0; q < P; q++) { out_nngp[q] = 0; out_ntk[q] = 0; }
  for (int h = 1; h <= H; h++) for (int w = 1; w <= H; w++) for (int g = 1; g <= H; g++) for (int v = 1; v <= H; v++) {
    const double *k = K + IDX(h, w, g, v), *t = T + IDX(h, w, g, v);
    for (int q = 0; q < P; q++) { out_nngp[q] += k[q]; out_ntk[q] += t[q]; }
  }
  for (int q = 0; q < P; q++) {
    double m = out_nngp[q] / (H * H * H * H), mt = out_ntk[q] / (H * H * H * H);
    out_nngp[q] = w2 * m + b2; out_ntk[q] = out_nngp[q] + w2 * mt;
  }
}
