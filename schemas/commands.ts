import { z } from "zod";
import { Limits } from "./constants.ts";
import { PackageName } from "./primitives.ts";

export const PackageOperation = z.enum(["install", "remove", "update", "upgrade"]);
export type PackageOperation = z.infer<typeof PackageOperation>;

/**
 * Options the agent maps onto each package manager's own flags. Closed set:
 * an unknown option is refused rather than passed through to a manager.
 */
export const PackageOptions = z.strictObject({
  /** Answer yes to prompts (apt `-y`, dnf `-y`, pacman `--noconfirm`…). Default true on the agent. */
  yes: z.boolean().optional(),
  /** Dry run through the manager's own simulation (apt `-s`, dnf `--assumeno`…). Default false. */
  simulate: z.boolean().optional(),
  /** Skip recommended/weak dependencies where the manager has them. Default false. */
  no_recommends: z.boolean().optional(),
});
export type PackageOptions = z.infer<typeof PackageOptions>;

export const PackageOperationParameters = z
  .strictObject({
    operation: PackageOperation,
    packages: z.array(PackageName).max(Limits.MAX_PACKAGES).default([]),
    options: PackageOptions.default({}),
  })
  .refine((p) => p.operation === "update" || p.operation === "upgrade" || p.packages.length > 0, {
    message: "install and remove need at least one package",
    path: ["packages"],
  });
export type PackageOperationParameters = z.infer<typeof PackageOperationParameters>;

export const SystemInfoParameters = z.strictObject({});
export type SystemInfoParameters = z.infer<typeof SystemInfoParameters>;

/** `shell` runs a script with `/bin/sh -c`; agents refuse it unless their config enables it. */
export const ShellParameters = z.strictObject({
  script: z.string().min(1).max(Limits.MAX_SCRIPT_CHARS),
  cwd: z.string().startsWith("/").max(4096).optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/), z.string().max(4096)).optional(),
});
export type ShellParameters = z.infer<typeof ShellParameters>;

export const CommandType = z.enum(["package_operation", "system_info", "shell"]);
export type CommandType = z.infer<typeof CommandType>;

/** A command's type with its typed parameters; discriminated on `command_type`. */
export const CommandSpec = z.discriminatedUnion("command_type", [
  z.object({ command_type: z.literal("package_operation"), parameters: PackageOperationParameters }),
  z.object({ command_type: z.literal("system_info"), parameters: SystemInfoParameters.default({}) }),
  z.object({ command_type: z.literal("shell"), parameters: ShellParameters }),
]);
export type CommandSpec = z.infer<typeof CommandSpec>;
