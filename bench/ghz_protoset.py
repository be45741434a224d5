"""Fetch the sidecar's service descriptors through server reflection, as a protoset for ghz.

    python bench/ghz_protoset.py [ADDRESS] [OUT]      (defaults: 127.0.0.1:50051 sidecar.protoset)
    ghz --insecure --protoset sidecar.protoset --call pynenc.sidecar.v1.DeterministicExecutorService.Random ...

Why: ghz resolves `--call pkg.Service.Method` by asking reflection for the file that contains
the *method* symbol, and Python's reflection service answers only for services and messages
(grpc/grpc#34743, bojand/ghz#419): plain `ghz --call ...` against the sidecar says "Symbol not
found". Asking for the *service* works, so this script does that (no proto files involved)
and writes the file with its dependencies as a FileDescriptorSet.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

SERVICES = ["pynenc.sidecar.v1.DeterministicExecutorService", "pynenc.sidecar.v1.StateBackendService"]


def fetch_protoset(address: str, services: list[str] = SERVICES) -> bytes:
    """The files defining `services` and their dependencies, dependencies first."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=name) for name in services]
        for reply in stub.ServerReflectionInfo(iter(requests), timeout=10):
            if reply.HasField("error_response"):
                # A service this server does not serve is left out; the others are enough.
                continue
            for blob in reply.file_descriptor_response.file_descriptor_proto:
                proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
                files.setdefault(proto.name, proto)
    if not files:
        raise RuntimeError(f"reflection on {address} returned none of {services}")
    ordered: list[descriptor_pb2.FileDescriptorProto] = []

    def add(name: str) -> None:  # dependencies before the files that import them
        if name in files and files[name] not in ordered:
            for dependency in files[name].dependency:
                add(dependency)
            ordered.append(files[name])

    for name in files:
        add(name)
    return descriptor_pb2.FileDescriptorSet(file=ordered).SerializeToString()


def main() -> int:
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "sidecar.protoset")
    out.write_bytes(fetch_protoset(address))
    print(f"wrote {out} (descriptors of {address}, fetched by reflection)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
