/**
 * One decoded request → one response body: the v4 handlers of the Linux GCS
 * (`bridge_v2.go`) in terms of the {@link Uvm} state. Failures become the
 * error replies the genuine guest sends: `Result`, `ErrorMessage` and exactly
 * one error record from module `gcs` with line `4294967295` (no stack).
 */
import type { ProtocolError, Rpc } from "@gcs-bridge/protocol"
import {
  Codec,
  Container,
  Envelope,
  Guid,
  MessageType,
  ModifySettings,
  Process,
  Properties,
  Uvm as UvmRpc
} from "@gcs-bridge/protocol"
import { Effect, Option, Result } from "effect"
import * as Failure from "./failure.js"
import type { GuestCrash, GuestFailure } from "./failure.js"
import type { Uvm } from "./uvm.js"
import { isLinuxResourceType, UvmContainerId } from "./uvm.js"

/** `Line` of an error record without source position. */
const UnknownLine = 0xffffffff

/** The response base fields echoing the request's ActivityId (omitted when there is none to echo). */
export const echo = (activityId: string | undefined): { readonly ActivityId?: Guid.Guid } =>
  Guid.isGuid(activityId) ? { ActivityId: activityId } : {}

/** The error reply for a failure. */
export const errorResponse = (failure: GuestFailure, activityId: string | undefined): Envelope.ResponseBase =>
  // Built from values of our own, so the constructors skip validation; encoding checks them anyway.
  new Envelope.ResponseBase(
    {
      Result: failure.hresult,
      ...echo(activityId),
      ErrorMessage: failure.message,
      ErrorRecords: [
        new Envelope.ErrorRecord(
          {
            Result: failure.hresult,
            Message: failure.message,
            ModuleName: "gcs",
            FileName: "",
            Line: UnknownLine
          },
          { disableChecks: true }
        )
      ]
    },
    { disableChecks: true }
  )

const { classOf, MessageClass, Proc, procName, procOf } = MessageType

/**
 * The procedure of a request or response type word that the Linux GCS's
 * handler table knows (Create … DeleteContainerState; it names no
 * DeleteContainerState response).
 */
const linuxProc = (type: number): MessageType.ProcName | undefined => {
  const proc = procOf(type)
  const cls = classOf(type)
  const last = cls === MessageClass.Request ? Proc.DeleteContainerState : Proc.DumpStacks
  return (cls === MessageClass.Request || cls === MessageClass.Response) && proc <= last
    ? procName(proc)
    : undefined
}

/**
 * The Linux GCS's name for a type word in E_NOTIMPL messages (its
 * `MessageIdentifier.String()`): the procedures and responses it defines,
 * the notification, and the decimal value for anything else (e.g.
 * `269487617` for UpdateContainer).
 */
export const guestTypeLabel = (type: number): string => {
  const t = type >>> 0
  if (t === 0) return "None"
  if (t === MessageType.NotifyContainer) return "ComputeSystemNotificationV1"
  const name = linuxProc(t)
  if (name === undefined) return String(t)
  return `ComputeSystem${classOf(t) === MessageClass.Response ? "Response" : ""}${name}V1`
}

/** Request types the v4 handler table serves once negotiated (NegotiateProtocol excluded). */
export const isV4Handler = (type: number): boolean => {
  const name = classOf(type) === MessageClass.Request ? linuxProc(type) : undefined
  return name !== undefined && name !== "NegotiateProtocol"
}

/** The 0xC037010D reply for a body that does not decode. */
export const invalidJson = (error: ProtocolError.ProtocolError): GuestFailure =>
  Failure.invalidJson(error.message)

/** What a handler needs besides the state. */
export interface DispatchContext {
  readonly uvm: Uvm
  /** The raw payload of the request (Create re-reads the config like Go does). */
  readonly payload: Uint8Array
  /** Text for DumpStacks. */
  readonly dumpStacks: Effect.Effect<string>
  /** ShutdownGraceful/Forced of the UVM: power off, never answer. */
  readonly powerOff: Effect.Effect<never>
}

const goNumber = (u: unknown): number => (typeof u === "number" && Number.isFinite(u) ? u : 0)

/**
 * The schema version and OCI spec of a Create's ContainerConfig, read like Go
 * reads `VMHostedContainerSettingsV2`: absent fields are zero, so a config
 * without `SchemaVersion` (a UVM config, say) is version 0.0; the spec is
 * returned as sent (`undefined` when absent).
 */
const readContainerConfig = (
  payload: Uint8Array
): { readonly major: number; readonly minor: number; readonly spec: unknown } => {
  const outer = Result.getOrUndefined(Codec.parsePayload(payload)) as Record<string, unknown> | undefined
  const text = outer?.["ContainerConfig"]
  let inner: Record<string, unknown> = {}
  if (typeof text === "string") {
    try {
      const parsed = JSON.parse(text) as unknown
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed))
        inner = parsed as Record<string, unknown>
    } catch {
      // decodeRequest already accepted the document; nothing else to learn here.
    }
  }
  const version = inner["SchemaVersion"]
  const v = typeof version === "object" && version !== null ? (version as Record<string, unknown>) : {}
  return { major: goNumber(v["Major"]), minor: goNumber(v["Minor"]), spec: inner["OciSpecification"] }
}

const execute = (uvm: Uvm, body: Rpc.RpcRequest<"ExecuteProcess">): Effect.Effect<number, GuestFailure> => {
  const p = body.Settings.ProcessParameters
  const relay = body.Settings.VsockStdioRelaySettings
  return uvm.exec({
    containerId: body.ContainerId,
    commandLine: p.CommandLine,
    commandArgs: p.CommandArgs,
    workingDirectory: p.WorkingDirectory,
    environment: p.Environment,
    emulateConsole: p.EmulateConsole,
    createStdIn: p.CreateStdInPipe,
    createStdOut: p.CreateStdOutPipe,
    createStdErr: p.CreateStdErrPipe,
    inUtilityVm: p.CreateInUtilityVM,
    ociProcess: Option.fromNullishOr(p.OciProcess),
    ports: { stdin: relay?.StdIn ?? 0, stdout: relay?.StdOut ?? 0, stderr: relay?.StdErr ?? 0 }
  })
}

const modify = (uvm: Uvm, body: Rpc.RpcRequest<"ModifySettings">): Effect.Effect<void, GuestFailure> => {
  // The Linux GCS reads every Request as a guest ModificationRequest: a WCOW
  // HCS ModifySettingRequest then simply has no ResourceType.
  const request =
    body.Request instanceof ModifySettings.ModificationRequest
      ? body.Request
      : new ModifySettings.ModificationRequest({})
  if (!isLinuxResourceType(request.ResourceType)) {
    return Effect.fail(Failure.unmarshal(Failure.fail(`invalid ResourceType '${request.ResourceType}'`)))
  }
  const settings = ModifySettings.decodeResourceSettings(request)
  if (Result.isFailure(settings)) return Effect.fail(Failure.invalidJson(settings.failure.message))
  return uvm.modifySettings({
    containerId: body.ContainerId,
    resourceType: request.ResourceType,
    requestType: ModifySettings.effectiveRequestType(request),
    settings: settings.success
  })
}

/** Runs the v4 handler of a decoded request; `GuestCrash` for a request the Linux GCS dies of. */
export const dispatch = (
  context: DispatchContext,
  request: Codec.DecodedRequest
): Effect.Effect<Envelope.ResponseBase, GuestFailure | GuestCrash> => {
  const { uvm } = context
  const base = echo(request.body.ActivityId)
  const ok = Effect.as(new Envelope.ResponseBase(base, { disableChecks: true }))
  switch (request.name) {
    case "Create": {
      const config = readContainerConfig(context.payload)
      return uvm
        .create({
          containerId: request.body.ContainerId,
          activityId: request.body.ActivityId,
          schemaVersion: { major: config.major, minor: config.minor },
          ociSpecification: config.spec
        })
        .pipe(Effect.as(new Container.ContainerCreateResponse(base)))
    }
    case "Start":
      return uvm.start(request.body.ContainerId).pipe(ok)
    case "ShutdownGraceful":
    case "ShutdownForced":
      return request.body.ContainerId === UvmContainerId
        ? context.powerOff
        : uvm.shutdown(request.body.ContainerId, request.name === "ShutdownGraceful").pipe(ok)
    case "ExecuteProcess":
      return execute(uvm, request.body).pipe(
        Effect.map((pid) => new Process.ContainerExecuteProcessResponse({ ...base, ProcessId: pid }))
      )
    case "WaitForProcess":
      return uvm
        .waitForProcess(request.body.ContainerId, request.body.ProcessId, request.body.TimeoutInMs)
        .pipe(Effect.map((code) => new Process.ContainerWaitForProcessResponse({ ...base, ExitCode: code })))
    case "SignalProcess": {
      const options = request.body.Options
      if (options instanceof Process.SignalProcessOptionsWindows) {
        return Effect.fail(Failure.invalidJson("Options.Signal: expected a Linux signal number"))
      }
      return uvm
        .signalProcess(request.body.ContainerId, request.body.ProcessId, options?.Signal ?? 0)
        .pipe(ok)
    }
    case "ResizeConsole":
      return uvm
        .resizeConsole(
          request.body.ContainerId,
          request.body.ProcessId,
          request.body.Height,
          request.body.Width
        )
        .pipe(ok)
    case "GetProperties":
      return uvm
        .getProperties(request.body.ContainerId, request.body.Query.PropertyTypes)
        .pipe(
          Effect.map(
            (properties) => new Properties.ContainerGetPropertiesResponse({ ...base, Properties: properties })
          )
        )
    case "ModifySettings":
      return modify(uvm, request.body).pipe(ok)
    case "DumpStacks":
      return context.dumpStacks.pipe(
        Effect.map((text) => new UvmRpc.DumpStacksResponse({ ...base, GuestStacks: text }))
      )
    case "DeleteContainerState":
      return uvm.deleteContainerState(request.body.ContainerId).pipe(ok)
    case "NegotiateProtocol":
    case "UpdateContainer":
    case "LifecycleNotification":
    case "ModifyServiceSettings":
      // Not in the v4 handler table (the session answers them before
      // dispatching); answered as the Linux GCS would all the same.
      return Effect.fail(Failure.notImplemented(guestTypeLabel(MessageType.requestType(Proc[request.name]))))
  }
}
