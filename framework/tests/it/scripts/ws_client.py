"""Real WebSocket clients (the `websockets` package) against shardloop.

usage: ws_client.py chat WS_URL [CA_FILE]   two members talk in the chat room
       ws_client.py echo WS_URL             an echo endpoint, every kind of message

Prints what it checked and exits 0, or raises (non-zero exit) at the
first difference.
"""

import asyncio
import ssl
import sys

import websockets


def tls(url, cafile):
    if not url.startswith("wss://"):
        return {}
    ctx = ssl.create_default_context(cafile=cafile)
    return {"ssl": ctx, "server_hostname": "localhost"}


async def chat(url, cafile=None):
    opts = tls(url, cafile)
    async with websockets.connect(url, subprotocols=["chat"], **opts) as a, \
            websockets.connect(url, subprotocols=["chat"], **opts) as b:
        assert a.subprotocol == "chat", a.subprotocol
        for ws in (a, b):
            welcome = await ws.recv()
            assert welcome.startswith("* welcome web"), welcome
        await a.send("/nick alice")
        await b.send("/nick bob")
        # Both nicks are set before anyone speaks (the server reads each
        # connection in order).
        await a.send("hello from alice")
        assert await b.recv() == "alice: hello from alice"
        await b.send("héllo from bob ✓")
        assert await a.recv() == "bob: héllo from bob ✓"
        # Binary is refused with 1003, and the close handshake completes.
        await b.send(b"\x00\x01")
        try:
            await b.recv()
            raise AssertionError("binary was accepted")
        except websockets.ConnectionClosed as e:
            assert e.rcvd.code == 1003, e.rcvd
        await a.close(code=1000, reason="bye")
        assert a.close_code == 1000, a.close_code
    print("chat ok")


async def echo(url):
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("plain text")
        assert await ws.recv() == "plain text"
        big = bytes(range(256)) * 4096  # 1 MiB
        await ws.send(big)
        assert await ws.recv() == big
        # A message sent in fragments arrives whole.
        await ws.send(["frag", "mé", "nted"])
        assert await ws.recv() == "fragménted"
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        await ws.close(code=4000, reason="done")
        assert ws.close_code == 4000, ws.close_code
    print("echo ok")


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    asyncio.run({"chat": chat, "echo": echo}[what](*args))
