import os from "node:os";
import type { CommandMessage } from "../../schemas/index.ts";
import { SystemInfoParameters } from "../../schemas/index.ts";
import { readOsRelease } from "../host-facts.ts";
import { type ExecutionOutcome, type ExecutorSettings, rejected } from "./types.ts";

/** Facts about this host, read in-process (no child process, so it answers in well under a millisecond). */
export function runSystemInfo(command: CommandMessage, settings: ExecutorSettings): ExecutionOutcome {
  const params = SystemInfoParameters.safeParse(command.parameters ?? {});
  if (!params.success) return rejected("system_info takes no parameters");
  const started = performance.now();
  const rel = readOsRelease();
  const cpus = os.cpus();
  const facts = {
    os: {
      name: rel.name,
      version: rel.version ?? null,
      id: rel.id ?? null,
      pretty_name: rel.prettyName ?? null,
    },
    kernel: os.release(),
    arch: os.machine(),
    hostname: os.hostname(),
    uptime: Math.round(os.uptime()),
    cpu: { model: cpus[0]?.model.trim() ?? null, count: os.availableParallelism() },
    memory: { total_bytes: os.totalmem(), free_bytes: os.freemem() },
    package_manager: settings.packageManager,
  };
  const mib = (n: number) => `${Math.round(n / 1024 / 1024)} MiB`;
  const output = [
    `os: ${rel.prettyName ?? [rel.name, rel.version].filter(Boolean).join(" ")}`,
    `kernel: ${facts.kernel}`,
    `arch: ${facts.arch}`,
    `hostname: ${facts.hostname}`,
    `uptime: ${facts.uptime} s`,
    `cpu: ${facts.cpu.count} × ${facts.cpu.model ?? "unknown"}`,
    `memory: ${mib(facts.memory.free_bytes)} free of ${mib(facts.memory.total_bytes)}`,
    `package manager: ${facts.package_manager ?? "none found"}`,
  ].join("\n");
  return {
    status: "success",
    result: { ...facts, output: `${output}\n`, exit_code: 0, execution_time: (performance.now() - started) / 1000 },
  };
}
