/**
 * Stands in for zod's `locales/index.js` in the Worker bundle (wrangler.toml `[alias]`, and the
 * local bundler in scripts/local-relay.ts): zod's namespace re-export of its 64 locales cannot be
 * tree-shaken and was 358 KiB of the bundle. The relay speaks English only; zod configures `en`
 * itself from `locales/en.js`, which this keeps reachable as `z.locales.en`.
 */
export { default as en } from "zod/v4/locales/en.js";
