/**
 * The dashboard's rebuild check (scripts/dashboard-build.ts) hashes dashboard/ plus SHARED_SOURCES.
 * This walks the relative imports of dashboard/src and fails when one reaches a file outside
 * dashboard/ that the list does not name, since npm start would then keep serving a stale build.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { expect, it } from "vitest";
import { SHARED_SOURCES } from "../../scripts/dashboard-build.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const DASHBOARD = path.join(ROOT, "dashboard");
// A type-only import (`import type … from`) is erased by the build, so the bundle never reads it.
const IMPORT = /(import\s+type\s[^;]*?from\s+|from\s+|import\s*\(\s*)"(\.{1,2}\/[^"]+)"/g;

it("every file outside dashboard/ that the dashboard imports is in SHARED_SOURCES", async () => {
  const queue = (await readdir(path.join(DASHBOARD, "src"), { recursive: true }))
    .filter((f) => /\.tsx?$/.test(f))
    .map((f) => path.join(DASHBOARD, "src", f));
  const seen = new Set(queue);
  const outside = new Set<string>();
  while (queue.length > 0) {
    const file = queue.pop()!;
    for (const m of (await readFile(file, "utf8")).matchAll(IMPORT)) {
      if (/^import\s+type\s/.test(m[1]!)) continue;
      const target = path.resolve(path.dirname(file), m[2]!);
      if (!/\.tsx?$/.test(target) || seen.has(target)) continue;
      seen.add(target);
      if (!target.startsWith(`${DASHBOARD}${path.sep}`)) outside.add(path.relative(ROOT, target));
      queue.push(target);
    }
  }
  expect(outside.size).toBeGreaterThan(0);
  expect([...outside].sort()).toEqual([...SHARED_SOURCES].sort());
});
