/**
 * Process bodies (§8.4-8.7, §11): ExecuteProcess with its parameters document and stdio relay settings,
 * WaitForProcess, SignalProcess, ResizeConsole.
 */
import { Schema } from "effect"
import { RequestBase, ResponseBase } from "./Envelope.js"
import {
  GoMap,
  Int32,
  JsonInString,
  JsonObject,
  lenient,
  omitEmpty,
  orZero,
  Uint16,
  Uint32
} from "./GoSchema.js"
import { Guid } from "./Guid.js"
import { isObject, member, polymorphic } from "./internal/polymorphic.js"

/** `TimeoutInMs` value meaning "wait forever". */
export const InfiniteTimeout = 0xffffffff

/**
 * The ProcessParameters document (§11.1): HCS schema-2 `ProcessParameters` followed by `OciProcess` (LCOW
 * container processes) and `CreateInUtilityVM` (understood by the Linux GCS). Every key is `omitempty`;
 * `Environment` is a Go map (keys written sorted).
 */
export class ProcessParameters extends Schema.Class<ProcessParameters>("ProcessParameters")({
  ApplicationName: omitEmpty(Schema.String),
  CommandLine: omitEmpty(Schema.String),
  CommandArgs: omitEmpty(Schema.Array(Schema.String)),
  User: omitEmpty(Schema.String),
  WorkingDirectory: omitEmpty(Schema.String),
  Environment: omitEmpty(GoMap(Schema.String)),
  RestrictedToken: omitEmpty(Schema.Boolean),
  EmulateConsole: omitEmpty(Schema.Boolean),
  CreateStdInPipe: omitEmpty(Schema.Boolean),
  CreateStdOutPipe: omitEmpty(Schema.Boolean),
  CreateStdErrPipe: omitEmpty(Schema.Boolean),
  /** `[height, width]`. */
  ConsoleSize: omitEmpty(Schema.Array(Int32)),
  UseExistingLogin: omitEmpty(Schema.Boolean),
  UseLegacyConsole: omitEmpty(Schema.Boolean),
  /** OCI runtime-spec `process` object, kept as given; absent for a container's init process. */
  OciProcess: Schema.optional(JsonObject),
  /** Run in the UVM rather than in the container (the Linux GCS's `IsExternal`). */
  CreateInUtilityVM: omitEmpty(Schema.Boolean)
}) {}

/** Stdio relay for a Windows guest: Hyper-V service GUID per requested stream. */
export class ExecuteProcessStdioRelaySettings extends Schema.Class<ExecuteProcessStdioRelaySettings>(
  "ExecuteProcessStdioRelaySettings"
)({ StdIn: Schema.optional(Guid), StdOut: Schema.optional(Guid), StdErr: Schema.optional(Guid) }) {}

/** Stdio relay for a Linux guest: vsock port per requested stream (0 = not requested). */
export class ExecuteProcessVsockStdioRelaySettings extends Schema.Class<ExecuteProcessVsockStdioRelaySettings>(
  "ExecuteProcessVsockStdioRelaySettings"
)({ StdIn: omitEmpty(Uint32), StdOut: omitEmpty(Uint32), StdErr: omitEmpty(Uint32) }) {}

/**
 * ExecuteProcess `Settings`: the parameters document as JSON in a string and the relay settings for the
 * guest's OS (the other one omitted).
 */
export class ExecuteProcessSettings extends Schema.Class<ExecuteProcessSettings>("ExecuteProcessSettings")({
  ProcessParameters: JsonInString(ProcessParameters),
  StdioRelaySettings: Schema.optional(ExecuteProcessStdioRelaySettings),
  VsockStdioRelaySettings: Schema.optional(ExecuteProcessVsockStdioRelaySettings)
}) {}

/** ExecuteProcess request. */
export class ContainerExecuteProcess extends RequestBase.extend<ContainerExecuteProcess>(
  "ContainerExecuteProcess"
)({ Settings: ExecuteProcessSettings }) {}

/** ExecuteProcess response: the guest PID (absent, so 0, on failure). */
export class ContainerExecuteProcessResponse extends ResponseBase.extend<ContainerExecuteProcessResponse>(
  "ContainerExecuteProcessResponse"
)({ ProcessId: orZero(Uint32) }) {}

/** WaitForProcess request; `TimeoutInMs` {@link InfiniteTimeout} waits forever. */
export class ContainerWaitForProcess extends RequestBase.extend<ContainerWaitForProcess>(
  "ContainerWaitForProcess"
)({ ProcessId: lenient(Uint32), TimeoutInMs: lenient(Uint32) }) {}

/**
 * WaitForProcess response: the exit status as an unsigned 32-bit number (`4294967295` is -1, a signal death
 * of a UVM process).
 */
export class ContainerWaitForProcessResponse extends ResponseBase.extend<ContainerWaitForProcessResponse>(
  "ContainerWaitForProcessResponse"
)({ ExitCode: orZero(Uint32) }) {}

/** SignalProcess options for a Linux guest: a signal number (0/absent means SIGKILL to the Linux GCS). */
export class SignalProcessOptionsLinux extends Schema.Class<SignalProcessOptionsLinux>(
  "SignalProcessOptionsLinux"
)({ Signal: omitEmpty(Int32) }) {}

/** Signal names a Windows guest accepts. */
export const WindowsSignal = {
  CtrlC: "CtrlC",
  CtrlBreak: "CtrlBreak",
  CtrlClose: "CtrlClose",
  CtrlLogOff: "CtrlLogOff",
  CtrlShutdown: "CtrlShutdown"
} as const

/** SignalProcess options for a Windows guest: a {@link WindowsSignal} name. */
export class SignalProcessOptionsWindows extends Schema.Class<SignalProcessOptionsWindows>(
  "SignalProcessOptionsWindows"
)({ Signal: omitEmpty(Schema.String) }) {}

/** SignalProcess `Options`: Windows shape when `Signal` is a string, Linux shape otherwise. */
export const SignalProcessOptions = polymorphic({
  identifier: "SignalProcessOptions",
  members: [SignalProcessOptionsLinux, SignalProcessOptionsWindows],
  select: (raw) => (!isObject(raw) ? -2 : typeof member(raw, "Signal") === "string" ? 1 : 0)
})

/** SignalProcess request; no `Options` means kill. */
export class ContainerSignalProcess extends RequestBase.extend<ContainerSignalProcess>(
  "ContainerSignalProcess"
)({ ProcessId: lenient(Uint32), Options: Schema.optional(SignalProcessOptions) }) {}

/** ResizeConsole request. */
export class ContainerResizeConsole extends RequestBase.extend<ContainerResizeConsole>(
  "ContainerResizeConsole"
)({
  ProcessId: lenient(Uint32),
  /** Rows. */
  Height: lenient(Uint16),
  /** Columns. */
  Width: lenient(Uint16)
}) {}
