/**
 * Seed and size of a fuzz suite. `FUZZ_SEED` replays a run (the seed is printed at the start of
 * every run and in fast-check's failure report); `FUZZ_RUNS` sets how many requests or frames are
 * generated. Both reach workerd as bindings (vitest.config.ts copies them from the environment).
 */
import { env } from "cloudflare:workers";

export interface FuzzConfig {
  seed: number;
  /** Requests (REST) or frames (WebSocket) to generate in all. */
  total: number;
}

export function fuzzConfig(suite: string, defaultTotal: number): FuzzConfig {
  const rawSeed = (env as { FUZZ_SEED?: string }).FUZZ_SEED ?? "";
  const rawRuns = (env as { FUZZ_RUNS?: string }).FUZZ_RUNS ?? "";
  const seed = rawSeed !== "" ? Number(rawSeed) | 0 : (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
  const total = rawRuns !== "" ? Math.max(1, Number(rawRuns) | 0) : defaultTotal;
  console.log(`[fuzz:${suite}] seed=${seed} total=${total} — replay with FUZZ_SEED=${seed} FUZZ_RUNS=${total}`);
  return { seed, total };
}
