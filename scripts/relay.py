#!/usr/bin/env python3
"""A delaying TCP relay for the benchmark: what a real network's round trips cost, on loopback.

netem is not available on these kernels, so latency is made here: for every address given, the
relay listens on ADDRESS:LISTEN_PORT and forwards each connection to ADDRESS:TARGET_PORT, holding
every chunk, in both directions, for the one-way delay before passing it on (order kept; a round
trip costs 2 × delay). Every client under test goes through the same relay, so it costs them
alike. Loopback only: addresses outside 127.0.0.0/8 are refused.

usage: relay.py --delay-ms D --listen-port Q --target-port P ADDRESS...
Prints "ready" on stdout once every listener is up; runs until killed.
"""
import argparse
import asyncio
import ipaddress
import sys


async def pump(reader, writer, delay):
    """Copy reader → writer, each chunk delivered `delay` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((loop.time() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((loop.time() + delay, None))
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("addresses", nargs="+")
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0
    for addr in a.addresses:
        if ipaddress.ip_address(addr) not in ipaddress.ip_network("127.0.0.0/8"):
            sys.exit(f"relay: {addr}: not a loopback address")

    def handler_for(addr):
        async def handle(client_r, client_w):
            try:
                server_r, server_w = await asyncio.open_connection(addr, a.target_port)
            except OSError:
                client_w.close()
                return
            await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))
            for w in (client_w, server_w):
                w.close()
        return handle

    servers = [await asyncio.start_server(handler_for(addr), addr, a.listen_port, backlog=4096)
               for addr in a.addresses]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
