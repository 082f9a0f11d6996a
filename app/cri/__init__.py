"""Speak the Kubernetes CRI image service the way the kubelet does, without gRPC libraries.

- ``huffman_table``, ``hpack``: HTTP/2 header compression (RFC 7541);
- ``grpc_stream``: unary gRPC calls over HTTP/2 on any socket-like byte stream;
- ``image_service``: the few CRI messages verify needs, encoded by hand (protobuf wire format);
- ``relay``: reaching a node's CRI socket over the SSH connection.
"""
