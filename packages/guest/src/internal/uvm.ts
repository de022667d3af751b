/**
 * The guest's machine-wide state — what the Linux GCS keeps in its `Host`:
 * containers, UVM ("external") processes, and the exit notifications waiting
 * for a connection. It outlives bridge connections (a re-dialled host finds its
 * containers again) and lives as long as the scope it was made in, whose
 * closing kills every process.
 *
 * Each operation implements one RPC with the Linux GCS's semantics and
 * HRESULTs (GCS-PROTOCOL §8, §11); wire decoding and encoding happen elsewhere.
 */
import { Deferred, Duration, Effect, Exit, Option, Queue, Scope } from "effect"
import type { ContainerState, ExitType, OciProcessSpec } from "./container.js"
import { findProcess, readOciProcess, readOciSpec } from "./container.js"
import * as Failure from "./failure.js"
import { GuestCrash, GuestFailure, Hr } from "./failure.js"
import type { LaunchSpec } from "./localProcess.js"
import { processTree, statistics } from "./procfs.js"
import type { Dial, GuestProcess, ProcessKind, StdioPorts } from "./process.js"
import { startProcess } from "./process.js"
import { splitShellWords } from "./shellWords.js"

/** The container id of requests addressed to the UVM itself. */
export const UvmContainerId = "00000000-0000-0000-0000-000000000000"

/** `TimeoutInMs` meaning "forever". */
const InfiniteWait = 0xffffffff

const SIGTERM = 15
const SIGKILL = 9

/** A container exit to report (§9.1). */
export interface PendingNotification {
  readonly containerId: string
  readonly activityId: string
  readonly type: ExitType
}

/** The Create request, as far as this guest reads it. */
export interface CreateRequest {
  readonly containerId: string
  readonly activityId: string
  /** `SchemaVersion` with Go's zero values for absent fields. */
  readonly schemaVersion: { readonly major: number; readonly minor: number }
  /** `OciSpecification` as sent (`undefined` when absent). */
  readonly ociSpecification: unknown
}

/** The ProcessParameters of an ExecuteProcess request, as far as this guest reads them. */
export interface ExecRequest {
  readonly containerId: string
  readonly commandLine: string
  readonly commandArgs: ReadonlyArray<string>
  readonly workingDirectory: string
  readonly environment: Readonly<Record<string, string>>
  readonly emulateConsole: boolean
  readonly createStdIn: boolean
  readonly createStdOut: boolean
  readonly createStdErr: boolean
  readonly inUtilityVm: boolean
  readonly ociProcess: Option.Option<unknown>
  readonly ports: StdioPorts
}

/** A ModifySettings `Request`, as far as this guest reads it. */
export interface ModifyRequest {
  readonly containerId: string
  readonly resourceType: string
  readonly requestType: string
  readonly settings: unknown
}

/** How the state reaches the host's stdio listeners and the pty helper. */
export interface UvmEnvironment {
  readonly dial: Dial
  /** The pty helper's interpreter; looked up once, on the first console process. */
  readonly python: Effect.Effect<Option.Option<string>>
  /** Working directory of UVM processes that name none (the Linux GCS's own, `/` in a UVM). */
  readonly defaultCwd: string
}

const notFound = () => Failure.bare(Hr.NotFound)
const systemNotFound = () => Failure.bare(Hr.SystemNotFound)
const notRunning = (id: string) => Failure.wrap(Hr.SystemAlreadyStopped, `container ${id} is not running`)

/**
 * Resource types the Linux GCS accepts (§8.9) and why this guest cannot carry
 * them out; ContainerConstraints and PodCgroupMemoryLimit are handled apart.
 */
const unsupportedResources: Record<string, string> = {
  SCSIDevice: "there are no SCSI devices to unplug",
  MappedVirtualDisk: "there are no virtual disks to mount",
  MappedDirectory: "there is no Plan 9 file server to mount",
  VPMemDevice: "there are no VPMem devices to mount",
  CombinedLayers: "there are no layers to combine into an overlay",
  Network: "there are no network namespaces or adapters",
  VPCIDevice: "there are no VPCI devices",
  SecurityPolicy: "there is no security policy enforcer",
  SecurityPolicyFragment: "there is no security policy enforcer"
}

/** The resource types the Linux GCS accepts at all; any other is `invalid ResourceType`. */
export const isLinuxResourceType = (type: string): boolean =>
  type === "ContainerConstraints" ||
  type === "PodCgroupMemoryLimit" ||
  Object.hasOwn(unsupportedResources, type)

/** An exec's working directory: its own, else the container's, else `/`. */
const execCwd = (oci: OciProcessSpec, init: OciProcessSpec): string =>
  oci.cwd !== "" ? oci.cwd : init.cwd !== "" ? init.cwd : "/"

/** What the host asked for beside the program itself. */
const launchSpec = (
  request: ExecRequest,
  program: Pick<LaunchSpec, "argv" | "env" | "cwd" | "console">,
  killGroupOnExit = false
): LaunchSpec => ({
  ...program,
  stdin: request.createStdIn,
  stdout: request.createStdOut,
  stderr: request.createStdErr,
  closeUnrequested: false,
  killGroupOnExit
})

/** The guest's state (see the module documentation): one operation per RPC, and the notifications to send. */
export type Uvm = Effect.Success<ReturnType<typeof make>>

/** A fresh state owned by the current scope, whose closing kills every process. */
export const make = Effect.fnUntraced(function* (env: UvmEnvironment) {
  const scope = yield* Effect.scope
  const containers = new Map<string, ContainerState>()
  const external = new Map<number, GuestProcess>()
  // One entry per container at most, so unbounded cannot grow without bound.
  const notifications = yield* Queue.unbounded<PendingNotification>()

  /** GetCreatedContainer: unknown ⇒ `0xC037010E`. */
  const container = (id: string): Effect.Effect<ContainerState, GuestFailure> => {
    const c = containers.get(id)
    return c === undefined ? Effect.fail(systemNotFound()) : Effect.succeed(c)
  }

  const containerProcess = Effect.fnUntraced(function* (containerId: string, pid: number) {
    const c = yield* container(containerId)
    const process = findProcess(c, pid)
    if (process === undefined) return yield* notFound()
    return { container: c, process }
  })

  /**
   * Waits for the init process to start and end, ends the rest of the
   * container, then — once the init's output is relayed and one
   * WaitForProcess on it obtained the exit code — queues the notification (§9.2).
   */
  const notifier = Effect.fnUntraced(function* (c: ContainerState) {
    const init = yield* Deferred.await(c.initStarted)
    yield* Deferred.await(init.local.exited)
    // The init's own process group is killed by its exit callback; the
    // exec'd processes go too, as in a container whose PID 1 is gone.
    for (const p of c.processes.values()) yield* p.local.killGroup
    yield* Deferred.await(init.done)
    yield* Deferred.await(c.initWaited)
    yield* Queue.offer(notifications, { containerId: c.id, activityId: c.activityId, type: c.exitType })
  })

  /** Create (§8.1), in the Linux GCS's order of checks (`createContainerV2`, `Host.CreateContainer`). */
  const create = Effect.fnUntraced(function* (request: CreateRequest) {
    // Go's decoder refuses a field of the wrong JSON type before anything is checked.
    const spec = readOciSpec(request.ociSpecification)
    if (spec instanceof GuestFailure) return yield* spec
    const { major, minor } = request.schemaVersion
    if (major < 2 || (major === 2 && minor < 1)) {
      return yield* Failure.wrap(Hr.InvalidJson, `invalid schema version: {${major} ${minor}}`)
    }
    // A nil pointer the Linux GCS dereferences kills it: the spec's annotations
    // are read first, then (after the duplicate check) spec.Linux, spec.Root, spec.Process.
    const crash = (what: string) =>
      new GuestCrash({
        reason: `Create of container ${JSON.stringify(request.containerId)}: ${what}; the Linux GCS dereferences it and dies`
      })
    if (spec === undefined) return yield* crash("the container config has no OciSpecification")
    if (containers.has(request.containerId)) return yield* Failure.bare(Hr.SystemAlreadyExists)
    const missing = (["linux", "root", "process"] as const).find((field) => !spec[field])
    if (missing !== undefined) return yield* crash(`OciSpecification has no "${missing}" object`)
    const init = spec.process!
    if (init.argv.length === 0) {
      return yield* Failure.fail("OciSpecification.process.args is empty: there is no init process to run")
    }
    const c: ContainerState = {
      id: request.containerId,
      activityId: request.activityId,
      init,
      scope: yield* Scope.fork(scope, "parallel"),
      createdAt: Date.now(),
      initStarted: yield* Deferred.make<GuestProcess>(),
      initWaited: yield* Deferred.make<void>(),
      shutDown: yield* Deferred.make<void>(),
      initProcess: undefined,
      initStarting: false,
      stoppedBeforeStart: false,
      exitType: "UnexpectedExit",
      processes: new Map(),
      constraints: Option.none()
    }
    containers.set(c.id, c)
    yield* Effect.forkIn(notifier(c), c.scope)
  })

  /** Start (§8.2): a no-op on Linux; the init process starts with the first ExecuteProcess. */
  const start = (containerId: string): Effect.Effect<void, GuestFailure> =>
    // The UVM itself is always "started": the Linux GCS answers success without a lookup.
    containerId === UvmContainerId ? Effect.void : Effect.asVoid(container(containerId))

  /** ShutdownGraceful / ShutdownForced (§8.3): SIGTERM / SIGKILL to the init, remembered as the exit type. */
  const shutdown = Effect.fnUntraced(function* (containerId: string, graceful: boolean) {
    const c = yield* container(containerId)
    yield* Deferred.succeed(c.shutDown, undefined)
    const type: ExitType = graceful ? "GracefulExit" : "ForcedExit"
    const init = c.initProcess
    if (init === undefined) {
      // Like runc killing a created container: it will never run, and with
      // no init the host can wait on, no notification follows.
      if (c.initStarting)
        return yield* Failure.wrap(Hr.GuestInvalidState, "the init process is being started")
      c.stoppedBeforeStart = true
      c.exitType = type
      return
    }
    if (init.local.hasExited()) return yield* notRunning(containerId)
    yield* init.local.signal(graceful ? SIGTERM : SIGKILL)
    c.exitType = type
  })

  /** DeleteContainerState (§8.12): kills what is left and always forgets the container. */
  const deleteContainerState = Effect.fnUntraced(function* (containerId: string) {
    const c = yield* container(containerId)
    containers.delete(containerId)
    yield* Scope.close(c.scope, Exit.void)
  })

  const launch = Effect.fnUntraced(function* (
    owner: Scope.Scope,
    kind: ProcessKind,
    spec: LaunchSpec,
    ports: StdioPorts,
    register: (process: GuestProcess) => void,
    redialUntil?: Effect.Effect<void>
  ) {
    const python = spec.console ? yield* env.python : Option.none<string>()
    const process = yield* startProcess(owner, {
      kind,
      spec,
      ports,
      dial: env.dial,
      python,
      register: (p) => Effect.sync(() => register(p)),
      ...(redialUntil === undefined ? {} : { redialUntil })
    })
    return process.pid
  })

  const execExternal = Effect.fnUntraced(function* (request: ExecRequest) {
    let argv = request.commandArgs
    if (argv.length === 0) {
      const split = splitShellWords(request.commandLine)
      if ("error" in split) {
        return yield* Failure.fail(
          `failed to parse command line string ${JSON.stringify(request.commandLine)}: ${split.error}`
        )
      }
      argv = split.words
    }
    const cwd = request.workingDirectory === "" ? env.defaultCwd : request.workingDirectory
    // Go's exec with a nil *os.File: a stream the host did not ask for is a closed fd (runc's are /dev/null).
    const spec: LaunchSpec = {
      ...launchSpec(request, { argv, env: request.environment, cwd, console: request.emulateConsole }),
      closeUnrequested: true
    }
    return yield* launch(scope, "external", spec, request.ports, (p) => external.set(p.pid, p))
  })

  const startInit = Effect.fnUntraced(function* (c: ContainerState, request: ExecRequest) {
    if (c.initProcess !== undefined || c.initStarting) {
      return yield* Failure.fail(`container ${c.id} has already been started`)
    }
    if (c.stoppedBeforeStart) {
      return yield* Failure.wrap(Hr.SystemAlreadyStopped, `container ${c.id} was shut down before it started`)
    }
    const { argv, env, cwd, terminal } = c.init
    const spec = launchSpec(request, { argv, env, cwd: cwd === "" ? "/" : cwd, console: terminal }, true)
    c.initStarting = true
    // Its output outlives the host's stdio connections (§14.4).
    return yield* launch(
      c.scope,
      "init",
      spec,
      request.ports,
      (p) => {
        c.initProcess = p
        Deferred.doneUnsafe(c.initStarted, Exit.succeed(p))
      },
      Deferred.await(c.shutDown)
    ).pipe(Effect.ensuring(Effect.sync(() => (c.initStarting = false))))
  })

  const execInContainer = Effect.fnUntraced(function* (
    c: ContainerState,
    request: ExecRequest,
    raw: unknown
  ) {
    const oci = readOciProcess("OciProcess", raw)
    if (oci instanceof GuestFailure) return yield* oci
    const init = c.initProcess
    if (init === undefined) {
      return yield* Failure.wrap(
        Hr.GuestInvalidState,
        `container ${c.id} is not running: its init process has not been started`
      )
    }
    if (init.local.hasExited()) return yield* notRunning(c.id)
    const spec = launchSpec(request, {
      argv: oci.argv,
      env: oci.env,
      cwd: execCwd(oci, c.init),
      console: oci.terminal
    })
    return yield* launch(c.scope, "exec", spec, request.ports, (p) => c.processes.set(p.pid, p))
  })

  /** ExecuteProcess (§8.4, §11.2): UVM process, container init, or exec; the pid. */
  const exec = Effect.fnUntraced(function* (request: ExecRequest) {
    if (request.containerId === UvmContainerId || request.inUtilityVm) return yield* execExternal(request)
    const c = yield* container(request.containerId)
    if (Option.isNone(request.ociProcess)) return yield* startInit(c, request)
    return yield* execInContainer(c, request, request.ociProcess.value)
  })

  /**
   * After a successful wait: an exec'd or UVM process is forgotten (later
   * requests for its pid get `0x80070490`), the init process is kept and may
   * now be reported (§8.5).
   */
  const release = Effect.fnUntraced(function* (process: GuestProcess, c: ContainerState | undefined) {
    if (process.kind === "init") {
      if (c !== undefined) yield* Deferred.succeed(c.initWaited, undefined)
      return
    }
    const map = process.kind === "external" ? external : c?.processes
    if (map?.get(process.pid) === process) {
      map.delete(process.pid)
      yield* Scope.close(process.scope, Exit.void)
    }
  })

  /** WaitForProcess (§8.5): the exit code. */
  const waitForProcess = Effect.fnUntraced(function* (containerId: string, pid: number, timeoutMs: number) {
    let process: GuestProcess | undefined
    let c: ContainerState | undefined
    if (containerId === UvmContainerId) {
      process = external.get(pid)
      if (process === undefined) return yield* notFound()
    } else {
      ;({ container: c, process } = yield* containerProcess(containerId, pid))
    }
    const waiting = Deferred.await(process.done)
    const code =
      timeoutMs === InfiniteWait
        ? yield* waiting
        : yield* Effect.timeoutOrElse(waiting, {
            duration: Duration.millis(timeoutMs),
            orElse: () => Effect.fail(Failure.bare(Hr.Timeout))
          })
    yield* release(process, c)
    return code
  })

  /** SignalProcess (§8.6): container processes only; 0 / absent means SIGKILL. */
  const signalProcess = Effect.fnUntraced(function* (containerId: string, pid: number, signal: number) {
    const { container: c, process } = yield* containerProcess(containerId, pid)
    const signo = signal === 0 ? SIGKILL : signal
    yield* process.local.signal(signo)
    if (process.kind === "init" && (signo === SIGTERM || signo === SIGKILL)) {
      c.exitType = signo === SIGTERM ? "GracefulExit" : "ForcedExit"
    }
  })

  /** ResizeConsole (§8.7): container processes with a terminal. */
  const resizeConsole = Effect.fnUntraced(function* (
    containerId: string,
    pid: number,
    height: number,
    width: number
  ) {
    const { process } = yield* containerProcess(containerId, pid)
    yield* process.local.resize(height, width)
  })

  /** GetProperties (§8.8): `ProcessList` and `Statistics`; other types are ignored. */
  const getProperties = Effect.fnUntraced(function* (
    containerId: string,
    propertyTypes: ReadonlyArray<string>
  ) {
    if (containerId === UvmContainerId) {
      return yield* Failure.fail("getPropertiesV2 is not supported against the UVM")
    }
    const c = yield* container(containerId)
    const living = [c.initProcess, ...c.processes.values()].flatMap((p) =>
      p === undefined || p.local.hasExited() ? [] : [p.pid]
    )
    const properties: Record<string, unknown> = {}
    for (const type of propertyTypes) {
      if (type === "ProcessList") {
        const pids = yield* processTree(living)
        // Go's `omitempty` drops an empty list.
        if (pids.length > 0) properties["ProcessList"] = pids.map((ProcessId) => ({ ProcessId }))
      } else if (type === "Statistics") {
        properties["LCOWMetrics"] = yield* statistics(yield* processTree(living))
      }
    }
    return properties
  })

  /**
   * ModifySettings (§8.9) of a known resource type whose settings were
   * validated already. Honoured: `ContainerConstraints` on a container (recorded and shown by
   * DumpStacks; nothing enforces them, there are no cgroups) and
   * `PodCgroupMemoryLimit` `Update` on the UVM (there is no pod cgroup whose
   * limit could be stale, so the refresh has nothing to do). Every other type
   * the Linux GCS knows is refused with E_FAIL saying why.
   */
  const modifySettings = Effect.fnUntraced(function* (request: ModifyRequest) {
    const { resourceType, requestType, settings } = request
    if (request.containerId !== UvmContainerId) {
      const c = yield* container(request.containerId)
      if (resourceType !== "ContainerConstraints") {
        return yield* Failure.fail(`the ResourceType "${resourceType}" is not supported for containers`)
      }
      c.constraints = Option.some(settings ?? {})
      return
    }
    switch (resourceType) {
      case "ContainerConstraints":
        // The Linux GCS looks the container up by the request's id: the UVM is none.
        return yield* systemNotFound()
      case "PodCgroupMemoryLimit":
        if (requestType !== "Update") {
          return yield* Failure.fail(
            `the RequestType "${requestType}" is not supported for PodCgroupMemoryLimit`
          )
        }
        return
      default:
        return yield* Failure.fail(
          `the ResourceType "${resourceType}" cannot be honoured by this guest: ${unsupportedResources[resourceType] ?? "it is not supported"}`
        )
    }
  })

  /** Lines describing the containers and processes, for DumpStacks. */
  const describe = (): ReadonlyArray<string> => {
    const now = Date.now()
    const proc = (p: GuestProcess) => {
      const state =
        p.exitCode !== undefined
          ? `exited with ${p.exitCode}`
          : p.local.hasExited()
            ? "exited, relaying output"
            : "running"
      const lost = p.redialling > 0 ? `, re-dialling ${p.redialling} lost output connection(s)` : ""
      return `pid ${p.pid} ${p.kind}${p.local.tty ? " tty" : ""} ${state}${lost}, ${Math.round((now - p.startedAt) / 1000)}s: ${JSON.stringify(p.argv.slice(0, 8))}`
    }
    const lines: Array<string> = [`containers: ${containers.size}`]
    for (const c of containers.values()) {
      const init =
        c.initProcess !== undefined
          ? proc(c.initProcess)
          : c.stoppedBeforeStart
            ? "shut down before start"
            : "not started"
      lines.push(`  container ${c.id} (exit type ${c.exitType}): init ${init}`)
      for (const p of c.processes.values()) lines.push(`    ${proc(p)}`)
      if (Option.isSome(c.constraints))
        lines.push(`    constraints (recorded, not enforced): ${JSON.stringify(c.constraints.value)}`)
    }
    lines.push(`uvm processes: ${external.size}`)
    for (const p of external.values()) lines.push(`  ${proc(p)}`)
    return lines
  }

  return {
    /** Container exits waiting to be sent, in order; a session takes them and hands back the unsent. */
    notifications,
    create,
    start,
    shutdown,
    deleteContainerState,
    exec,
    waitForProcess,
    signalProcess,
    resizeConsole,
    getProperties,
    modifySettings,
    describe
  }
})
