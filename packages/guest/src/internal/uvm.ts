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
import type { Scope } from "effect"
import { Deferred, Duration, Effect, ExecutionStrategy, Exit, Option, Queue, Scope as ScopeNs } from "effect"
import type { ContainerState, ExitType, OciProcessSpec } from "./container.js"
import { findProcess, readOciProcess } from "./container.js"
import { HResult, NullGuid } from "@gcs-bridge/protocol"
import * as Failure from "./failure.js"
import { GuestFailure } from "./failure.js"
import type { LaunchSpec } from "./localProcess.js"
import { processTree, statistics } from "./procfs.js"
import type { Dial, GuestProcess, ProcessKind, StdioPorts } from "./process.js"
import { hasExited, startProcess } from "./process.js"
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
  /** The OCI runtime spec object, or `None` when absent / not an object. */
  readonly ociSpecification: Option.Option<unknown>
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

const notFound = () => Failure.bare(HResult.NotFound)
const systemNotFound = () => Failure.bare(HResult.SystemNotFound)

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

/** The guest's state; see the module documentation. */
export class Uvm {
  readonly containers = new Map<string, ContainerState>()
  readonly external = new Map<number, GuestProcess>()

  private constructor(
    readonly scope: Scope.Scope,
    readonly env: UvmEnvironment,
    readonly notifications: Queue.Queue<PendingNotification>
  ) {}

  /** A fresh state owned by the current scope. */
  static make(env: UvmEnvironment): Effect.Effect<Uvm, never, Scope.Scope> {
    return Effect.gen(function* () {
      const scope = yield* Effect.scope
      // One entry per container at most, so unbounded cannot grow without bound.
      const notifications = yield* Queue.unbounded<PendingNotification>()
      return new Uvm(scope, env, notifications)
    })
  }

  /** GetCreatedContainer: unknown ⇒ `0xC037010E`. */
  private container(id: string): Effect.Effect<ContainerState, GuestFailure> {
    const c = this.containers.get(id)
    return c === undefined ? Effect.fail(systemNotFound()) : Effect.succeed(c)
  }

  private process(container: ContainerState, pid: number): Effect.Effect<GuestProcess, GuestFailure> {
    return Option.match(findProcess(container, pid), {
      onNone: () => Effect.fail(notFound()),
      onSome: Effect.succeed
    })
  }

  /** Create (§8.1). */
  create(request: CreateRequest): Effect.Effect<void, GuestFailure> {
    return Effect.gen(this, function* () {
      const { major, minor } = request.schemaVersion
      if (major < 2 || (major === 2 && minor < 1)) {
        return yield* Effect.fail(
          Failure.wrap(HResult.InvalidJson, `invalid schema version: {${major} ${minor}}`)
        )
      }
      if (this.containers.has(request.containerId)) {
        return yield* Effect.fail(Failure.bare(HResult.SystemAlreadyExists))
      }
      if (Option.isNone(request.ociSpecification)) {
        return yield* Effect.fail(
          Failure.fail("container config has no OciSpecification: there is nothing to run")
        )
      }
      const spec = request.ociSpecification.value as Record<string, unknown>
      if (spec["process"] === undefined || spec["process"] === null) {
        return yield* Effect.fail(
          Failure.fail("OciSpecification has no process: there is no init process to run")
        )
      }
      const init = readOciProcess("OciSpecification.process", spec["process"])
      if (init instanceof GuestFailure) return yield* Effect.fail(init)
      if (init.argv.length === 0) {
        return yield* Effect.fail(
          Failure.fail("OciSpecification.process.args is empty: there is no init process to run")
        )
      }
      const scope = yield* ScopeNs.fork(this.scope, ExecutionStrategy.parallel)
      const container: ContainerState = {
        id: request.containerId,
        activityId: request.activityId,
        init,
        scope,
        createdAt: Date.now(),
        initStarted: yield* Deferred.make<GuestProcess>(),
        initWaited: yield* Deferred.make<void>(),
        initProcess: undefined,
        initStarting: false,
        stoppedBeforeStart: false,
        exitType: "UnexpectedExit",
        processes: new Map(),
        constraints: Option.none()
      }
      this.containers.set(container.id, container)
      yield* Effect.forkIn(this.notifier(container), scope)
    })
  }

  /**
   * Waits for the init process to start and end, ends the rest of the
   * container, then — once the init's output is relayed and one
   * WaitForProcess on it obtained the exit code — queues the notification (§9.2).
   */
  private notifier(container: ContainerState): Effect.Effect<void> {
    return Effect.gen(this, function* () {
      const init = yield* Deferred.await(container.initStarted)
      yield* Deferred.await(init.local.exited)
      // The init's own process group is killed by its exit callback; the
      // exec'd processes go too, as in a container whose PID 1 is gone.
      for (const p of container.processes.values()) yield* p.local.killGroup
      yield* Deferred.await(init.done)
      yield* Deferred.await(container.initWaited)
      yield* Queue.offer(this.notifications, {
        containerId: container.id,
        activityId: container.activityId,
        type: container.exitType
      })
    })
  }

  /** Start (§8.2): a no-op on Linux; the init process starts with the first ExecuteProcess. */
  start(containerId: string): Effect.Effect<void, GuestFailure> {
    // The UVM itself is always "started": the Linux GCS answers success without a lookup.
    if (containerId === NullGuid) return Effect.void
    return this.container(containerId).pipe(Effect.asVoid)
  }

  /**
   * ShutdownGraceful / ShutdownForced (§8.3) for a container: SIGTERM / SIGKILL
   * to its init process, remembered as the notification's exit type.
   */
  shutdown(containerId: string, graceful: boolean): Effect.Effect<void, GuestFailure> {
    return Effect.gen(this, function* () {
      const container = yield* this.container(containerId)
      const type: ExitType = graceful ? "GracefulExit" : "ForcedExit"
      const init = container.initProcess
      if (init === undefined) {
        // Like runc killing a created container: it will never run, and with
        // no init the host can wait on, no notification follows.
        if (!container.initStarting) {
          container.stoppedBeforeStart = true
          container.exitType = type
          return
        }
        return yield* Effect.fail(
          Failure.wrap(HResult.GuestInvalidState, "the init process is being started")
        )
      }
      if (hasExited(init)) {
        return yield* Effect.fail(
          Failure.wrap(HResult.SystemAlreadyStopped, `container ${containerId} is not running`)
        )
      }
      yield* init.local.signal(graceful ? SIGTERM : SIGKILL)
      container.exitType = type
    })
  }

  /** DeleteContainerState (§8.12): kills what is left and always forgets the container. */
  deleteContainerState(containerId: string): Effect.Effect<void, GuestFailure> {
    return Effect.gen(this, function* () {
      const container = yield* this.container(containerId)
      this.containers.delete(containerId)
      yield* ScopeNs.close(container.scope, Exit.void)
    })
  }

  /** ExecuteProcess (§8.4, §11.2): UVM process, container init, or exec. */
  exec(request: ExecRequest): Effect.Effect<number, GuestFailure> {
    return Effect.gen(this, function* () {
      if (request.containerId === UvmContainerId || request.inUtilityVm)
        return yield* this.execExternal(request)
      const container = yield* this.container(request.containerId)
      if (Option.isNone(request.ociProcess)) return yield* this.startInit(container, request)
      return yield* this.execInContainer(container, request, request.ociProcess.value)
    })
  }

  private launchSpec(
    process: {
      argv: ReadonlyArray<string>
      env: Readonly<Record<string, string>>
      cwd: string
      console: boolean
    },
    request: ExecRequest,
    killGroupOnExit: boolean
  ): LaunchSpec {
    return {
      argv: process.argv,
      env: process.env,
      cwd: process.cwd,
      console: process.console,
      stdin: request.createStdIn,
      stdout: request.createStdOut,
      stderr: request.createStdErr,
      killGroupOnExit
    }
  }

  private start_(
    scope: Scope.Scope,
    kind: ProcessKind,
    spec: LaunchSpec,
    ports: StdioPorts,
    register: (process: GuestProcess) => Effect.Effect<void>
  ): Effect.Effect<GuestProcess, GuestFailure> {
    return Effect.gen(this, function* () {
      const python = spec.console ? yield* this.env.python : Option.none<string>()
      return yield* startProcess(scope, { kind, spec, ports, dial: this.env.dial, python, register })
    })
  }

  private execExternal(request: ExecRequest): Effect.Effect<number, GuestFailure> {
    return Effect.gen(this, function* () {
      let argv = request.commandArgs
      if (argv.length === 0) {
        const split = splitShellWords(request.commandLine)
        if ("error" in split) {
          return yield* Effect.fail(
            Failure.fail(
              `failed to parse command line string ${JSON.stringify(request.commandLine)}: ${split.error}`
            )
          )
        }
        argv = split.words
      }
      const spec = this.launchSpec(
        {
          argv,
          env: request.environment,
          cwd: request.workingDirectory === "" ? this.env.defaultCwd : request.workingDirectory,
          console: request.emulateConsole
        },
        request,
        false
      )
      const process = yield* this.start_(this.scope, "external", spec, request.ports, (p) =>
        Effect.sync(() => this.external.set(p.pid, p))
      )
      return process.pid
    })
  }

  private startInit(container: ContainerState, request: ExecRequest): Effect.Effect<number, GuestFailure> {
    return Effect.gen(this, function* () {
      if (container.initProcess !== undefined || container.initStarting) {
        return yield* Effect.fail(Failure.fail(`container ${container.id} has already been started`))
      }
      if (container.stoppedBeforeStart) {
        return yield* Effect.fail(
          Failure.wrap(
            HResult.SystemAlreadyStopped,
            `container ${container.id} was shut down before it started`
          )
        )
      }
      const init = container.init
      const spec = this.launchSpec(
        { argv: init.argv, env: init.env, cwd: init.cwd === "" ? "/" : init.cwd, console: init.terminal },
        request,
        true
      )
      container.initStarting = true
      const process = yield* this.start_(container.scope, "init", spec, request.ports, (p) =>
        Effect.sync(() => (container.initProcess = p)).pipe(
          Effect.zipRight(Deferred.succeed(container.initStarted, p))
        )
      ).pipe(Effect.ensuring(Effect.sync(() => (container.initStarting = false))))
      return process.pid
    })
  }

  private execInContainer(
    container: ContainerState,
    request: ExecRequest,
    rawOciProcess: unknown
  ): Effect.Effect<number, GuestFailure> {
    return Effect.gen(this, function* () {
      const oci = readOciProcess("OciProcess", rawOciProcess)
      if (oci instanceof GuestFailure) return yield* Effect.fail(oci)
      const init = container.initProcess
      if (init === undefined) {
        return yield* Effect.fail(
          Failure.wrap(
            HResult.GuestInvalidState,
            `container ${container.id} is not running: its init process has not been started`
          )
        )
      }
      if (hasExited(init)) {
        return yield* Effect.fail(
          Failure.wrap(HResult.SystemAlreadyStopped, `container ${container.id} is not running`)
        )
      }
      const spec = this.launchSpec(
        {
          argv: oci.argv,
          env: oci.env,
          cwd: execCwd(oci, container.init),
          console: oci.terminal
        },
        request,
        false
      )
      const process = yield* this.start_(container.scope, "exec", spec, request.ports, (p) =>
        Effect.sync(() => container.processes.set(p.pid, p))
      )
      return process.pid
    })
  }

  /** WaitForProcess (§8.5). */
  waitForProcess(containerId: string, pid: number, timeoutMs: number): Effect.Effect<number, GuestFailure> {
    return Effect.gen(this, function* () {
      let process: GuestProcess
      let container: ContainerState | undefined
      if (containerId === UvmContainerId) {
        const found = this.external.get(pid)
        if (found === undefined) return yield* Effect.fail(notFound())
        process = found
      } else {
        container = yield* this.container(containerId)
        process = yield* this.process(container, pid)
      }
      const waiting = Deferred.await(process.done)
      const code =
        timeoutMs === InfiniteWait
          ? yield* waiting
          : yield* waiting.pipe(
              Effect.timeoutFail({
                duration: Duration.millis(timeoutMs),
                onTimeout: () => Failure.bare(HResult.Timeout)
              })
            )
      yield* this.release(process, container)
      return code
    })
  }

  /**
   * After a successful wait: an exec'd or UVM process is forgotten (later
   * requests for its pid get `0x80070490`), the init process is kept and may
   * now be reported (§8.5).
   */
  private release(process: GuestProcess, container: ContainerState | undefined): Effect.Effect<void> {
    return Effect.gen(this, function* () {
      if (process.kind === "init") {
        if (container !== undefined) yield* Deferred.succeed(container.initWaited, undefined)
        return
      }
      const map = process.kind === "external" ? this.external : container?.processes
      if (map?.get(process.pid) === process) {
        map.delete(process.pid)
        yield* ScopeNs.close(process.scope, Exit.void)
      }
    })
  }

  /** SignalProcess (§8.6): container processes only; 0 / absent means SIGKILL. */
  signalProcess(containerId: string, pid: number, signal: number): Effect.Effect<void, GuestFailure> {
    return Effect.gen(this, function* () {
      const container = yield* this.container(containerId)
      const process = yield* this.process(container, pid)
      const signo = signal === 0 ? SIGKILL : signal
      yield* process.local.signal(signo)
      if (process.kind === "init" && (signo === SIGTERM || signo === SIGKILL)) {
        container.exitType = signo === SIGTERM ? "GracefulExit" : "ForcedExit"
      }
    })
  }

  /** ResizeConsole (§8.7): container processes with a terminal. */
  resizeConsole(
    containerId: string,
    pid: number,
    height: number,
    width: number
  ): Effect.Effect<void, GuestFailure> {
    return Effect.gen(this, function* () {
      const container = yield* this.container(containerId)
      const process = yield* this.process(container, pid)
      yield* process.local.resize(height, width)
    })
  }

  /** GetProperties (§8.8): `ProcessList` and `Statistics`; other types are ignored. */
  getProperties(
    containerId: string,
    propertyTypes: ReadonlyArray<string>
  ): Effect.Effect<Record<string, unknown>, GuestFailure> {
    return Effect.gen(this, function* () {
      if (containerId === UvmContainerId) {
        return yield* Effect.fail(Failure.fail("getPropertiesV2 is not supported against the UVM"))
      }
      const container = yield* this.container(containerId)
      const living = [container.initProcess, ...container.processes.values()]
        .filter((p): p is GuestProcess => p !== undefined && !hasExited(p))
        .map((p) => p.pid)
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
  }

  /**
   * ModifySettings (§8.9), for a known resource type whose settings were
   * validated already. Honoured: `ContainerConstraints` on a container
   * (recorded and shown by DumpStacks; nothing enforces them, there are no
   * cgroups) and `PodCgroupMemoryLimit` `Update` on the UVM (there is no pod
   * cgroup whose limit could be stale, so the refresh has nothing to do).
   * Every other type the Linux GCS knows is refused with E_FAIL saying why.
   */
  modifySettings(request: ModifyRequest): Effect.Effect<void, GuestFailure> {
    return Effect.gen(this, function* () {
      const { resourceType, requestType, settings } = request
      if (request.containerId !== UvmContainerId) {
        const container = yield* this.container(request.containerId)
        if (resourceType !== "ContainerConstraints") {
          return yield* Effect.fail(
            Failure.fail(`the ResourceType "${resourceType}" is not supported for containers`)
          )
        }
        container.constraints = Option.some(settings ?? {})
        return
      }
      switch (resourceType) {
        case "ContainerConstraints":
          // The Linux GCS looks the container up by the request's id: the UVM is none.
          return yield* Effect.fail(systemNotFound())
        case "PodCgroupMemoryLimit":
          if (requestType !== "Update") {
            return yield* Effect.fail(
              Failure.fail(`the RequestType "${requestType}" is not supported for PodCgroupMemoryLimit`)
            )
          }
          return
        default:
          return yield* Effect.fail(
            Failure.fail(
              `the ResourceType "${resourceType}" cannot be honoured by this guest: ${unsupportedResources[resourceType] ?? "it is not supported"}`
            )
          )
      }
    })
  }

  /** Lines describing the containers and processes, for DumpStacks. */
  describe(): ReadonlyArray<string> {
    const now = Date.now()
    const proc = (p: GuestProcess) => {
      const state = Option.match(p.exitCode(), {
        onNone: () => (hasExited(p) ? "exited, relaying output" : "running"),
        onSome: (code) => `exited with ${code}`
      })
      return `pid ${p.pid} ${p.kind}${p.local.tty ? " tty" : ""} ${state}, ${Math.round((now - p.startedAt) / 1000)}s: ${JSON.stringify(p.argv.slice(0, 8))}`
    }
    const lines: Array<string> = [`containers: ${this.containers.size}`]
    for (const c of this.containers.values()) {
      const init =
        c.initProcess === undefined
          ? c.stoppedBeforeStart
            ? "shut down before start"
            : "not started"
          : proc(c.initProcess)
      lines.push(`  container ${c.id} (exit type ${c.exitType}): init ${init}`)
      for (const p of c.processes.values()) lines.push(`    ${proc(p)}`)
      if (Option.isSome(c.constraints))
        lines.push(`    constraints (recorded, not enforced): ${JSON.stringify(c.constraints.value)}`)
    }
    lines.push(`uvm processes: ${this.external.size}`)
    for (const p of this.external.values()) lines.push(`  ${proc(p)}`)
    return lines
  }
}

/** An exec's working directory: its own, else the container's, else `/`. */
const execCwd = (oci: OciProcessSpec, init: OciProcessSpec): string =>
  oci.cwd !== "" ? oci.cwd : init.cwd !== "" ? init.cwd : "/"
