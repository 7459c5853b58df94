import { z } from "zod";
import { Limits } from "./constants.ts";
import { PackageName } from "./primitives.ts";

export const PackageOperation = z
  .enum(["install", "remove", "update", "upgrade"])
  .meta({ id: "PackageOperation", description: "install or remove named packages; update the package index; upgrade installed packages" });
export type PackageOperation = z.infer<typeof PackageOperation>;

/**
 * Options the agent maps onto each package manager's own flags. Closed set:
 * an unknown option is refused rather than passed through to a manager.
 */
export const PackageOptions = z
  .strictObject({
    yes: z.boolean().optional().describe("Answer yes to prompts (apt `-y`, dnf `-y`, pacman `--noconfirm`…). Default true on the agent."),
    simulate: z.boolean().optional().describe("Dry run through the manager's own simulation (apt `-s`, dnf `--assumeno`…). Default false."),
    no_recommends: z.boolean().optional().describe("Skip recommended/weak dependencies where the manager has them. Default false."),
  })
  .meta({
    id: "PackageOptions",
    description: "Options the agent maps onto each package manager's own flags; a closed set (an unknown option is refused).",
  });
export type PackageOptions = z.infer<typeof PackageOptions>;

export const PackageOperationParameters = z
  .strictObject({
    operation: PackageOperation,
    packages: z
      .array(PackageName)
      .max(Limits.MAX_PACKAGES)
      .default([])
      .describe("Packages to act on; install and remove need at least one"),
    options: PackageOptions.default({}),
  })
  .refine((p) => p.operation === "update" || p.operation === "upgrade" || p.packages.length > 0, {
    message: "install and remove need at least one package",
    path: ["packages"],
  })
  .meta({ id: "PackageOperationParameters", description: "Parameters of a `package_operation` command" });
export type PackageOperationParameters = z.infer<typeof PackageOperationParameters>;

export const SystemInfoParameters = z
  .strictObject({})
  .meta({ id: "SystemInfoParameters", description: "Parameters of a `system_info` command: none" });
export type SystemInfoParameters = z.infer<typeof SystemInfoParameters>;

/** `shell` runs a script with `/bin/sh -c`; agents refuse it unless their config enables it. */
export const ShellParameters = z
  .strictObject({
    script: z.string().min(1).max(Limits.MAX_SCRIPT_CHARS).describe("The script, run with `/bin/sh -c`"),
    cwd: z.string().startsWith("/").max(4096).optional().describe("Absolute working directory; default the agent's"),
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/), z.string().max(4096))
      .optional()
      .describe("Extra environment variables for the script"),
  })
  .meta({
    id: "ShellParameters",
    description: "Parameters of a `shell` command. Agents refuse `shell` unless their configuration enables it.",
  });
export type ShellParameters = z.infer<typeof ShellParameters>;

export const CommandType = z.enum(["package_operation", "system_info", "shell"]).meta({ id: "CommandType" });
export type CommandType = z.infer<typeof CommandType>;

/** A command's type with its typed parameters; discriminated on `command_type`. */
export const CommandSpec = z.discriminatedUnion("command_type", [
  z.object({ command_type: z.literal("package_operation"), parameters: PackageOperationParameters }),
  z.object({ command_type: z.literal("system_info"), parameters: SystemInfoParameters.default({}) }),
  z.object({ command_type: z.literal("shell"), parameters: ShellParameters }),
]);
export type CommandSpec = z.infer<typeof CommandSpec>;
