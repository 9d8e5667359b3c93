"""Cost of one llama_decode by weight format: prefill speed, and n sequences' next tokens in one step.

    python benchmarks/decode_step.py [--model smollm2] [--weights shipped,q8_0,f16] [--repeat 12]

For each weight format of a packaged model (transcode.py re-encodes it), with the engine's context
settings (EngineConfig's defaults: flash attention, 48-row ubatches, no repacked kernels; unified
KV): the prefill rate of a 432-token prompt, then the median time of one `llama_decode` holding
the next token of 1, 2, 4 and 8 sequences that share that prompt. The last column is what
batching can gain at 8 sequences over the serial engine, whose single row is padded to two:
8 x (2-row step) / (8-row step).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.models.llamacpp import engine as llamacpp_engine  # noqa: E402  (sets OMP_WAIT_POLICY before llama_cpp loads)
from toolkit.models.llamacpp.files import PACKAGED_MODELS, cache_dir  # noqa: E402
from toolkit.models.llamacpp.transcode import RUNTIME_FORMATS, runtime_weights  # noqa: E402

PROMPT_TOKENS = 432  # a BFCL question with its functions, about
ENGINE = llamacpp_engine.EngineConfig()  # the engine's defaults: ubatch size, flash attention, no repack


class Probe:
    def __init__(self, path: Path, threads: int):
        self.llama = llama_cpp = llamacpp_engine.quiet_llama_logs()
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.use_extra_bufts = ENGINE.repack
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch, cparams.n_seq_max = 2048, ENGINE.n_batch, ENGINE.n_ubatch, 8
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.kv_unified = True
        cparams.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if ENGINE.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(ENGINE.n_batch, 0, 1)

    def decode(self, rows: list[tuple[int, int, int, bool]]) -> float:
        """rows: (token, position, sequence, wants logits); returns the seconds llama_decode took."""
        b = self.batch
        b.n_tokens = len(rows)
        for i, (token, pos, seq, logits) in enumerate(rows):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = seq
        started = time.perf_counter()
        code = self.llama.llama_decode(self.ctx, b)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        return time.perf_counter() - started

    def prefill_rate(self, repeat: int) -> float:
        times = []
        for _ in range(repeat):
            self.llama.llama_memory_clear(self.memory, True)
            times.append(self.decode([(100 + i % 500, i, 0, i == PROMPT_TOKENS - 1) for i in range(PROMPT_TOKENS)]))
        return PROMPT_TOKENS / min(times)

    def step_ms(self, n: int, repeat: int) -> float:
        for seq in range(1, n):
            self.llama.llama_memory_seq_rm(self.memory, seq, -1, -1)
            self.llama.llama_memory_seq_cp(self.memory, 0, seq, -1, -1)
        times = []
        for _ in range(repeat):
            times.append(self.decode([(200 + seq, PROMPT_TOKENS, seq, True) for seq in range(n)]))
            for seq in range(n):
                self.llama.llama_memory_seq_rm(self.memory, seq, PROMPT_TOKENS, -1)
        return statistics.median(times) * 1000

    def close(self) -> None:
        self.llama.llama_batch_free(self.batch)
        self.llama.llama_free(self.ctx)
        self.llama.llama_model_free(self.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", choices=sorted(PACKAGED_MODELS))
    parser.add_argument("--weights", default="shipped,q8_0,f16", help=f"formats among {', '.join(RUNTIME_FORMATS)}")
    parser.add_argument("--repeat", type=int, default=12, help="decodes per figure (the median is shown)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all cores)")
    args = parser.parse_args()
    formats = [f.strip() for f in args.weights.split(",")]
    unknown = [f for f in formats if f not in RUNTIME_FORMATS]
    if unknown:
        parser.error(f"unknown weight format(s) {', '.join(unknown)}; known: {', '.join(RUNTIME_FORMATS)}")
    label, locate, _ = PACKAGED_MODELS[args.model]
    threads = args.threads or os.cpu_count() or 1
    print(f"{label}; {threads} threads; prefill of {PROMPT_TOKENS} tokens, then one step of n sequences")
    print(
        f"{'weights':<10}{'prefill tok/s':>14}{'1 row ms':>10}{'2 rows':>9}{'4 rows':>9}{'8 rows':>9}{'gain at 8':>11}"
    )
    for fmt in formats:
        probe = Probe(runtime_weights(locate(), fmt, cache_dir()), threads)
        try:
            rate = probe.prefill_rate(max(1, args.repeat // 4))
            ms = {n: probe.step_ms(n, args.repeat) for n in (1, 2, 4, 8)}
        finally:
            probe.close()
        print(f"{fmt:<10}{rate:>14.0f}{ms[1]:>10.1f}{ms[2]:>9.1f}{ms[4]:>9.1f}{ms[8]:>9.1f}{8 * ms[2] / ms[8]:>10.2f}x")


if __name__ == "__main__":
    main()
