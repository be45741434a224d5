"""Server reflection that also resolves method names, so ghz and grpcurl need no protos.

grpcio-reflection answers `file_containing_symbol` through the protobuf descriptor pool,
which does not know method names ("pkg.Service.Method"), and ghz asks for exactly that
(grpc/grpc#34743). Fall back to the service that declares the method.
"""

from __future__ import annotations

from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc


class MethodAwareReflectionServicer(reflection.aio.ReflectionServicer):
    def _file_containing_symbol(self, request, fully_qualified_name):
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if not response.HasField("error_response"):
            return response
        service_name, _, method = fully_qualified_name.rpartition(".")
        try:
            service = self._pool.FindServiceByName(service_name)
        except KeyError:
            return response
        if method not in service.methods_by_name:
            return response
        return super()._file_containing_symbol(request, service_name)


def enable_reflection(service_names: list[str], server) -> None:
    names = [*service_names, reflection.SERVICE_NAME]
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(MethodAwareReflectionServicer(names), server)
