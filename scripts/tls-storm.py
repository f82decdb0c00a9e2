#!/usr/bin/python3
"""A TLS handshake storm against a broker's SSL listener: N connections opened as fast as the
broker takes them (at most CONCURRENCY handshaking at once), each doing the full handshake and
one ApiVersions request, then held open until all are done and closed together.

    scripts/tls-storm.py HOST:PORT CA.pem [N] [CONCURRENCY] [CERT.pem KEY.pem]

Prints one JSON line: connections, handshakes that failed, wall time, handshakes/s, and the
slowest handshake (ms). Standard library only (Debian's /usr/bin/python3)."""
import asyncio, json, ssl, struct, sys, time

# ApiVersions v0: size, api key 18, version 0, correlation 1, null client id.
API_VERSIONS = struct.pack(">ihhih", 10, 18, 0, 1, -1)


async def one(host, port, ctx, gate, slowest, held):
    async with gate:
        t0 = time.monotonic()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx), timeout=30)
        writer.write(API_VERSIONS)
        await writer.drain()
        size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 30))[0]
        await asyncio.wait_for(reader.readexactly(size), 30)
        slowest[0] = max(slowest[0], time.monotonic() - t0)
        held.append(writer)


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    conc = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    if len(sys.argv) > 6:
        ctx.load_cert_chain(sys.argv[5], sys.argv[6])
    gate, slowest, held = asyncio.Semaphore(conc), [0.0], []
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(one(host, int(port), ctx, gate, slowest, held) for _ in range(n)),
        return_exceptions=True)
    wall = time.monotonic() - t0
    failed = [r for r in results if isinstance(r, BaseException)]
    for w in held:
        w.close()
    print(json.dumps({
        "connections": n, "failed": len(failed),
        "first_error": repr(failed[0]) if failed else None,
        "wall_s": round(wall, 3), "handshakes_per_s": round((n - len(failed)) / wall, 1),
        "slowest_ms": round(slowest[0] * 1000, 1)}))


asyncio.run(main())
