/** The RPC table: for every procedure, its number and the Schemas of its request and response bodies. */
import type { Schema } from "effect"
import { ContainerCreate, ContainerCreateResponse, UpdateContainerRequest } from "./Container.js"
import { RequestBase, ResponseBase } from "./Envelope.js"
import type { ProcName } from "./MessageType.js"
import { Proc } from "./MessageType.js"
import { ContainerModifySettings } from "./ModifySettings.js"
import { NegotiateProtocolRequest, NegotiateProtocolResponse } from "./Negotiate.js"
import {
  ContainerExecuteProcess,
  ContainerExecuteProcessResponse,
  ContainerResizeConsole,
  ContainerSignalProcess,
  ContainerWaitForProcess,
  ContainerWaitForProcessResponse
} from "./Process.js"
import { ContainerGetProperties, ContainerGetPropertiesResponse } from "./Properties.js"
import { ServiceModificationRequest } from "./Service.js"
import { DumpStacksResponse } from "./Uvm.js"

const rpc = <P extends number, Req extends RequestBase, Res extends ResponseBase, ReqI, ResI>(
  proc: P,
  request: Schema.Codec<Req, ReqI> & (new (...args: never) => Req),
  response: Schema.Codec<Res, ResI> & (new (...args: never) => Res)
) => ({ proc, request, response }) as const

/**
 * Every RPC of §3.2. Requests that are only the base (Start, Shutdown*, DumpStacks, DeleteContainerState,
 * LifecycleNotification) use {@link RequestBase}; responses that are only the base use {@link ResponseBase}.
 */
export const Rpcs = {
  Create: rpc(Proc.Create, ContainerCreate, ContainerCreateResponse),
  Start: rpc(Proc.Start, RequestBase, ResponseBase),
  ShutdownGraceful: rpc(Proc.ShutdownGraceful, RequestBase, ResponseBase),
  ShutdownForced: rpc(Proc.ShutdownForced, RequestBase, ResponseBase),
  ExecuteProcess: rpc(Proc.ExecuteProcess, ContainerExecuteProcess, ContainerExecuteProcessResponse),
  WaitForProcess: rpc(Proc.WaitForProcess, ContainerWaitForProcess, ContainerWaitForProcessResponse),
  SignalProcess: rpc(Proc.SignalProcess, ContainerSignalProcess, ResponseBase),
  ResizeConsole: rpc(Proc.ResizeConsole, ContainerResizeConsole, ResponseBase),
  GetProperties: rpc(Proc.GetProperties, ContainerGetProperties, ContainerGetPropertiesResponse),
  ModifySettings: rpc(Proc.ModifySettings, ContainerModifySettings, ResponseBase),
  NegotiateProtocol: rpc(Proc.NegotiateProtocol, NegotiateProtocolRequest, NegotiateProtocolResponse),
  DumpStacks: rpc(Proc.DumpStacks, RequestBase, DumpStacksResponse),
  DeleteContainerState: rpc(Proc.DeleteContainerState, RequestBase, ResponseBase),
  UpdateContainer: rpc(Proc.UpdateContainer, UpdateContainerRequest, ResponseBase),
  LifecycleNotification: rpc(Proc.LifecycleNotification, RequestBase, ResponseBase),
  ModifyServiceSettings: rpc(Proc.ModifyServiceSettings, ServiceModificationRequest, ResponseBase)
} as const satisfies { readonly [N in ProcName]: { readonly proc: (typeof Proc)[N] } }

/** Request body type of a procedure. */
export type RpcRequest<N extends ProcName> = InstanceType<(typeof Rpcs)[N]["request"]>

/** Response body type of a procedure. */
export type RpcResponse<N extends ProcName> = InstanceType<(typeof Rpcs)[N]["response"]>
