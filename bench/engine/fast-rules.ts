/**
 * The experimental gradient rules that lived here (Conv dW by im2col + Gemm, stride-1 Conv dX by a forward Conv
 * with the flipped kernel, tiled MaxPool without Indices) are now the library's default rules, in
 * src/autodiff/rules/conv.ts and src/autodiff/rules/pool.ts, so every benchmark measures them.
 *
 * TODO(lead): delete this file together with the `--fast-rules` flag of bench/torch-grads.ts and its mention in
 * bench/README.md (outside this change's scope); until then this is a no-op kept so that flag still builds.
 */
export function useFastRules(): void {}
