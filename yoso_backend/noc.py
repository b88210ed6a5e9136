"""The network-on-chip timing model: a 2-D mesh of 5-port routers, X-Y routing, link contention.

Geometry: PE ``p`` sits at column ``x = p % width``, row ``y = p // width``. Every router has five
output ports (local, east +x, west -x, north +y, south -y); output port ``o`` of router ``p`` is link
``p * 5 + o``. The local input port of router ``p`` (the core's injection port) is link
``n_pe * 5 + p``; the host's port (on router ``host``, hardware description ``[host]``) has its own
input link ``n_pe * 6`` and output link ``n_pe * 6 + 1``. Every link carries one flit per cycle.

Routing is dimension-ordered X-Y (as in OpenSMART): first along x to the destination column,
then along y. A packet of ``F`` flits that enters a router at cycle ``t`` and wants output link
``L`` is granted the link at ``g = max(t, free[L])``; the link is then busy for ``F`` cycles
(``free[L] = g + F``) and the head reaches the next router at ``g + hop_cycles``. With a 1-stage
router ``hop_cycles = 2`` (router stage + link stage), so an uncontended packet over ``h`` hops
spends ``(h + 1) * hop_cycles`` cycles from injection to the destination's local port (the last
"hop" is the ejection into the router-interface FIFO). ``g - t`` summed over the path is the
packet's contention stall.

Back-pressure from a full FIFO is the caller's job (``pe.py``): it holds the destination's local
output link busy until the FIFO accepts the packet, so every later packet for that PE queues
behind it in the router, as a blocked ejection port does in hardware.

All kernels are numba (`cache=True`); `Mesh` holds the Python-side geometry and a slow,
obviously-correct route used by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

PORT_LOCAL, PORT_EAST, PORT_WEST, PORT_NORTH, PORT_SOUTH = 0, 1, 2, 3, 4
N_PORTS = 5
PORT_NAMES = ("local", "east", "west", "north", "south")


@dataclass(frozen=True)
class Mesh:
    """A ``width`` x ``height`` mesh (width = columns along x)."""

    width: int
    height: int

    @property
    def n_pe(self) -> int:
        return self.width * self.height

    @property
    def n_links(self) -> int:
        """Router output links (5 per router), one injection link per router, host in and out."""
        return n_links(self.n_pe)

    def xy(self, pe: int) -> tuple[int, int]:
        return pe % self.width, pe // self.width

    def pe(self, x: int, y: int) -> int:
        return y * self.width + x

    def hops(self, src: int, dst: int) -> int:
        (sx, sy), (dx, dy) = self.xy(src), self.xy(dst)
        return abs(dx - sx) + abs(dy - sy)

    def route(self, src: int, dst: int) -> list[tuple[int, int]]:
        """X-Y route as (router, output port) pairs, ending with the destination's local port."""
        x, y = self.xy(src)
        dx, dy = self.xy(dst)
        path = []
        while (x, y) != (dx, dy):
            here = self.pe(x, y)
            if x < dx:
                path.append((here, PORT_EAST))
                x += 1
            elif x > dx:
                path.append((here, PORT_WEST))
                x -= 1
            elif y < dy:
                path.append((here, PORT_NORTH))
                y += 1
            else:
                path.append((here, PORT_SOUTH))
                y -= 1
        path.append((dst, PORT_LOCAL))
        return path

    def hop_matrix(self) -> np.ndarray:
        """int64 [n_pe, n_pe]: X-Y hop count between every pair of PEs."""
        idx = np.arange(self.n_pe)
        x, y = idx % self.width, idx // self.width
        return (np.abs(x[:, None] - x[None, :]) + np.abs(y[:, None] - y[None, :])).astype(np.int64)


@njit(cache=True)
def n_links(n_pe):
    return n_pe * (N_PORTS + 1) + 2


@njit(cache=True)
def xy_hops(src, dst, width):
    """Manhattan distance = X-Y hop count between two PEs."""
    return abs(dst % width - src % width) + abs(dst // width - src // width)


@njit(cache=True)
def route_to_eject(src, dst, t_inject, width, n_pe, hop_cycles, flits, link_free, link_flits, inj):
    """Send one packet entering router ``src`` through input link ``inj`` (``n_pe * 5 + src`` for
    the core, ``n_pe * 6`` for the host) to ``dst``'s local output port.

    Returns ``(t_ready, hops, stall)``: the cycle at which the packet requests the destination's
    local (ejection) port, the hop count, and the cycles lost waiting for busy links (including
    the injection port). Updates ``link_free`` (next free cycle per link) and ``link_flits``
    (flits carried per link, for heat maps). The ejection link itself is left to the caller,
    which knows whether the FIFO behind it has room.
    """
    g = max(t_inject, link_free[inj])
    stall = g - t_inject
    link_free[inj] = g + flits
    link_flits[inj] += flits
    t = g  # the head enters router src
    x = src % width
    y = src // width
    dx = dst % width
    dy = dst // width
    cur = src
    hops = 0
    while cur != dst:
        if x < dx:
            port = PORT_EAST
            nxt = cur + 1
            x += 1
        elif x > dx:
            port = PORT_WEST
            nxt = cur - 1
            x -= 1
        elif y < dy:
            port = PORT_NORTH
            nxt = cur + width
            y += 1
        else:
            port = PORT_SOUTH
            nxt = cur - width
            y -= 1
        link = cur * N_PORTS + port
        g = max(t, link_free[link])
        stall += g - t
        link_free[link] = g + flits
        link_flits[link] += flits
        t = g + hop_cycles
        cur = nxt
        hops += 1
    return t, hops, stall


@njit(cache=True, inline="always")
def eject(link, t_ready, t_fifo_room, hop_cycles, flits, link_free, link_flits):
    """Move a packet through output ``link`` (a local port, or the host's) into the FIFO behind it.

    The port is granted at ``g = max(t_ready, free, t_fifo_room)``; it stays busy until the packet
    is written into the FIFO, so a full FIFO blocks the port (back-pressure). Returns
    ``(t_in_fifo, port_stall, fifo_stall)``: the cycle the packet is in the FIFO, the cycles lost to
    an ejection port busy with earlier packets, and the cycles lost only to a full FIFO.
    """
    g_port = max(t_ready, link_free[link])
    g = max(g_port, t_fifo_room)
    link_free[link] = g + flits
    link_flits[link] += flits
    return g + hop_cycles, g_port - t_ready, g - g_port


@njit(cache=True)
def route_table(width, n_pe):
    """X-Y routes of every (src, dst) pair: ``links[src * n_pe + dst, h]`` is the output link taken at
    hop h, ``n_hops[src * n_pe + dst]`` the hop count (the kernels' fast path; equals `route_to_eject`)."""
    height = n_pe // width
    max_h = width + height - 2
    links = np.zeros((n_pe * n_pe, max(max_h, 1)), np.int64)
    n_hops = np.zeros(n_pe * n_pe, np.int64)
    for src in range(n_pe):
        for dst in range(n_pe):
            r = src * n_pe + dst
            x = src % width
            y = src // width
            dx = dst % width
            dy = dst // width
            cur = src
            h = 0
            while cur != dst:
                if x < dx:
                    links[r, h] = cur * N_PORTS + PORT_EAST
                    cur += 1
                    x += 1
                elif x > dx:
                    links[r, h] = cur * N_PORTS + PORT_WEST
                    cur -= 1
                    x -= 1
                elif y < dy:
                    links[r, h] = cur * N_PORTS + PORT_NORTH
                    cur += width
                    y += 1
                else:
                    links[r, h] = cur * N_PORTS + PORT_SOUTH
                    cur -= width
                    y -= 1
                h += 1
            n_hops[r] = h
    return links, n_hops


@njit(cache=True, inline="always")
def route_fast(r, t_inject, hop_cycles, flits, link_free, link_flits, inj, links, n_hops):
    """`route_to_eject` over a precomputed route ``r = src * n_pe + dst`` (same results)."""
    g = max(t_inject, link_free[inj])
    stall = g - t_inject
    link_free[inj] = g + flits
    link_flits[inj] += flits
    t = g
    nh = n_hops[r]
    for h in range(nh):
        link = links[r, h]
        g = max(t, link_free[link])
        stall += g - t
        link_free[link] = g + flits
        link_flits[link] += flits
        t = g + hop_cycles
    return t, nh, stall


@njit(cache=True, inline="always")
def route_buffered(r, t_inject, hop_cycles, flits, link_free, link_flits, inj, links, n_hops, buf, bpos):
    """`route_fast` with finite router input buffers (``router.fifo_depth`` flits per input port).

    ``buf[L, :]`` holds, for the last D flits that crossed link L into a router's input buffer,
    the cycle each left that buffer (was granted its next link); a flit may cross L only when the
    flit D places earlier has left (credit-based flow control). A blocked flit therefore holds its
    buffer slot and stalls the links behind it, hop by hop: back-pressure. Returns
    ``(t_ready, hops, stall, last_link)``; the caller frees ``last_link``'s slot when the packet is
    ejected (`leave`)."""
    depth = buf.shape[1]
    g = max(t_inject, link_free[inj], buf[inj, bpos[inj]])
    stall = g - t_inject
    link_free[inj] = g + flits
    link_flits[inj] += flits
    prev = inj
    t = g
    nh = n_hops[r]
    for h in range(nh):
        link = links[r, h]
        g = max(t, link_free[link], buf[link, bpos[link]])
        stall += g - t
        leave(prev, g, buf, bpos, depth)
        link_free[link] = g + flits
        link_flits[link] += flits
        t = g + hop_cycles
        prev = link
    return t, nh, stall, prev


@njit(cache=True, inline="always")
def leave(link, g, buf, bpos, depth):
    """The flit that came in over ``link`` leaves that input buffer at cycle ``g``."""
    p = bpos[link]
    buf[link, p] = g
    p += 1
    bpos[link] = 0 if p == depth else p
