// Transport measurement behind the SDK's choice of @connectrpc/connect-node (see README):
// N sequential unary Random calls through connect-node's gRPC transport and through
// @grpc/grpc-js, both with the same protoc-gen-es messages: wall time per call (mostly the
// sidecar's) and the client process's CPU time per call (the transport's own cost).
//
//   npm run build && npm install --no-save @grpc/grpc-js@1.14.3
//   node bench/transport.mjs 127.0.0.1:50051 2000
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  DeterministicExecutorService,
  RandomRequestSchema,
  RandomResponseSchema,
} from "../dist/src/gen/pynenc/sidecar/v1/deterministic_executor_pb.js";

const address = process.argv[2] ?? process.env.PYNENC_SIDECAR_ADDRESS;
const N = Number(process.argv[3] ?? 2000);
const position = (workflowId, sequence) => ({ appId: "bench", workflow: { workflowId }, sequence: BigInt(sequence) });

async function connectNode() {
  const sessions = new Http2SessionManager(`http://${address}`);
  const client = createClient(DeterministicExecutorService, createGrpcTransport({ baseUrl: `http://${address}`, sessionManager: sessions }));
  await client.random({ position: position("warm-up", 1) });
  const workflowId = `connect-${Date.now()}`;
  const t0 = performance.now(), cpu0 = process.cpuUsage();
  for (let i = 1; i <= N; i++) await client.random({ position: position(workflowId, i) });
  const ms = performance.now() - t0, cpu = process.cpuUsage(cpu0);
  sessions.abort();
  return [ms, (cpu.user + cpu.system) / 1000];
}

async function grpcJs() {
  const grpc = await import("@grpc/grpc-js");
  const Ctor = grpc.makeGenericClientConstructor(
    {
      random: {
        path: "/pynenc.sidecar.v1.DeterministicExecutorService/Random",
        requestStream: false,
        responseStream: false,
        requestSerialize: (m) => Buffer.from(toBinary(RandomRequestSchema, m)),
        requestDeserialize: (b) => fromBinary(RandomRequestSchema, b),
        responseSerialize: (m) => Buffer.from(toBinary(RandomResponseSchema, m)),
        responseDeserialize: (b) => fromBinary(RandomResponseSchema, b),
      },
    },
    "DeterministicExecutorService",
  );
  const client = new Ctor(address, grpc.credentials.createInsecure());
  const random = (req) => new Promise((resolve, reject) => client.random(req, (e, r) => (e ? reject(e) : resolve(r))));
  await random(create(RandomRequestSchema, { position: position("warm-up", 1) }));
  const workflowId = `grpcjs-${Date.now()}`;
  const t0 = performance.now(), cpu0 = process.cpuUsage();
  for (let i = 1; i <= N; i++) await random(create(RandomRequestSchema, { position: position(workflowId, i) }));
  const ms = performance.now() - t0, cpu = process.cpuUsage(cpu0);
  client.close();
  return [ms, (cpu.user + cpu.system) / 1000];
}

for (const [name, bench] of [["connect-node (gRPC)", connectNode], ["@grpc/grpc-js", grpcJs]]) {
  for (let round = 1; round <= 3; round++) {
    const [ms, cpuMs] = await bench();
    console.log(
      `${name.padEnd(20)} round ${round}: ${N} calls in ${ms.toFixed(0)} ms = ${((ms / N) * 1000).toFixed(0)} us/call; ` +
        `client CPU ${((cpuMs / N) * 1000).toFixed(0)} us/call`,
    );
  }
}
