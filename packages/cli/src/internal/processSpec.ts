/**
 * What `gcsctl run` asks the guest to run, in the two shapes the protocol
 * has: HCS `ProcessParameters` for a process in the utility VM, and an LCOW
 * container (`LinuxHostedSystem` with an OCI spec whose `process` is the
 * command) for `--container`.
 */
import { Container, type GoSchema, Negotiate, type Process } from "@gcs-bridge/protocol"
import type { TerminalSize } from "../Stdio.js"

/** The process as the command line describes it. */
export interface RunSpec {
  readonly argv: ReadonlyArray<string>
  /** `--env` entries in order; later ones win. */
  readonly env: ReadonlyArray<readonly [string, string]>
  /** `--cwd`; empty for the guest's default. */
  readonly cwd: string
  readonly interactive: boolean
  readonly tty: boolean
  /** The local terminal's size, when there is one and a console was asked for. */
  readonly consoleSize: TerminalSize | undefined
}

/**
 * A process started through the bridge gets exactly the environment it is
 * given, so a `PATH` (containerd's default) is added unless the user set one,
 * and `TERM` for a console, as `docker run -t` does.
 */
export const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/** The environment with the defaults filled in. */
export const environment = (spec: RunSpec): Record<string, string> => {
  const env: Record<string, string> = { PATH: DefaultPath, ...(spec.tty ? { TERM: "xterm" } : {}) }
  for (const [key, value] of spec.env) env[key] = value
  return env
}

/** Which stdio streams to relay: stdin only with `-i`; with a console stderr is part of the terminal. */
const pipes = (spec: RunSpec) => ({
  CreateStdInPipe: spec.interactive,
  CreateStdOutPipe: true,
  CreateStdErrPipe: !spec.tty
})

/** ExecuteProcess parameters of a process in the utility VM (§11.10). */
export const uvmProcess = (spec: RunSpec): typeof Process.ProcessParameters.Encoded => ({
  CommandArgs: spec.argv,
  ...(spec.cwd === "" ? {} : { WorkingDirectory: spec.cwd }),
  Environment: environment(spec),
  EmulateConsole: spec.tty,
  ...(spec.tty && spec.consoleSize !== undefined
    ? { ConsoleSize: [spec.consoleSize.rows, spec.consoleSize.columns] }
    : {}),
  ...pipes(spec)
})

/** ExecuteProcess parameters that start a container's init process (the spec's `process`). */
export const initProcess = (spec: RunSpec): typeof Process.ProcessParameters.Encoded => pipes(spec)

/** Where the Linux GCS keeps a container's bundle (hcsshim's layout). */
const bundlePath = (id: string): string => `/run/gcs/c/${id}`

/**
 * What every Linux container gets, as hcsshim (and Docker's default spec)
 * sends: the Linux GCS reads `linux` unconditionally while it sets the
 * container up (`setupStandaloneContainerSpec` sets `linux.cgroupsPath`), so
 * a spec without it kills the guest; the namespaces isolate the container's
 * processes, IPC, hostname and mounts (the network is the utility VM's), and
 * the mounts are the file systems a Linux program expects (`/dev/pts` for `-t`).
 */
export const linuxDefaults = {
  linux: { namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }] },
  mounts: [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"]
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
    },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] }
  ]
} satisfies GoSchema.JsonObject

/**
 * The Create document of an LCOW container whose init process is the
 * command. The root filesystem path follows hcsshim's layout; a genuine GCS
 * needs it mounted there first (gcsctl mounts no layers).
 */
export const lcowContainer = (id: string, spec: RunSpec): Container.LinuxHostedSystem => {
  const process: GoSchema.JsonObject = {
    terminal: spec.tty,
    ...(spec.tty && spec.consoleSize !== undefined
      ? { consoleSize: { height: spec.consoleSize.rows, width: spec.consoleSize.columns } }
      : {}),
    user: { uid: 0, gid: 0 },
    args: [...spec.argv],
    env: Object.entries(environment(spec)).map(([key, value]) => `${key}=${value}`),
    cwd: spec.cwd === "" ? "/" : spec.cwd
  }
  return new Container.LinuxHostedSystem({
    SchemaVersion: new Negotiate.SchemaVersion({ Major: 2, Minor: 1 }),
    OciBundlePath: bundlePath(id),
    OciSpecification: {
      ociVersion: "1.1.0",
      process,
      root: { path: `${bundlePath(id)}/rootfs` },
      ...linuxDefaults
    },
    ScratchDirPath: ""
  })
}

/** Container ids the Linux GCS accepts in paths and runc accepts as names. */
const containerIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** Whether `id` can name a container. */
export const isValidContainerId = (id: string): boolean => containerIdPattern.test(id)
