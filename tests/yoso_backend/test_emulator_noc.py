"""NoC model: X-Y routes and hop counts, per-hop latency, link contention, FIFO back-pressure."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from yoso_backend.noc import (N_PORTS, PORT_EAST, PORT_LOCAL, PORT_NORTH, PORT_SOUTH, PORT_WEST, Mesh,
                              eject, n_links, route_to_eject, xy_hops)

MESH = Mesh(width=6, height=7)


def _send(mesh, src, dst, t, link_free, link_flits, hop=2, flits=1):
    inj = mesh.n_pe * N_PORTS + src
    return route_to_eject(src, dst, t, mesh.width, mesh.n_pe, hop, flits, link_free, link_flits, inj)


def test_route_is_x_then_y():
    # (0,0) -> (2,1): east, east, north, then the local port of PE (2,1) = 8
    assert MESH.route(0, MESH.pe(2, 1)) == [(0, PORT_EAST), (1, PORT_EAST), (2, PORT_NORTH), (8, PORT_LOCAL)]
    assert MESH.route(MESH.pe(3, 4), MESH.pe(1, 2)) == [
        (MESH.pe(3, 4), PORT_WEST), (MESH.pe(2, 4), PORT_WEST), (MESH.pe(1, 4), PORT_SOUTH),
        (MESH.pe(1, 3), PORT_SOUTH), (MESH.pe(1, 2), PORT_LOCAL)]
    assert MESH.route(5, 5) == [(5, PORT_LOCAL)]


@given(st.integers(0, 41), st.integers(0, 41))
@settings(max_examples=200, deadline=None)
def test_hops_match_route_and_kernel(src, dst):
    hops = len(MESH.route(src, dst)) - 1
    assert hops == MESH.hops(src, dst) == xy_hops(src, dst, MESH.width) == MESH.hop_matrix()[src, dst]
    link_free = np.zeros(n_links(MESH.n_pe), np.int64)
    link_flits = np.zeros_like(link_free)
    t, k_hops, stall = _send(MESH, src, dst, 10, link_free, link_flits)
    assert k_hops == hops and stall == 0
    assert t == 10 + 2 * hops  # then ejection costs one more hop_cycles
    # the flits sit exactly on the route's inter-router links and the injection link
    used = sorted(np.nonzero(link_flits)[0].tolist())
    want = sorted([r * N_PORTS + o for r, o in MESH.route(src, dst)[:-1]] + [MESH.n_pe * N_PORTS + src])
    assert used == want


def test_one_hop_latency_is_two_hops_of_cycles():
    link_free = np.zeros(n_links(MESH.n_pe), np.int64)
    link_flits = np.zeros_like(link_free)
    t, hops, stall = _send(MESH, 0, 1, 0, link_free, link_flits)
    t_fifo, port_stall, fifo_stall = eject(1 * N_PORTS, t, 0, 2, 1, link_free, link_flits)
    assert (hops, stall, port_stall, fifo_stall) == (1, 0, 0, 0)
    assert t_fifo == 4  # (hops + 1) * 2 cycles: one router+link, then ejection


def test_link_contention_serialises_flits():
    # two packets from different sources share the east link 1 -> 2 at the same cycle
    link_free = np.zeros(n_links(MESH.n_pe), np.int64)
    link_flits = np.zeros_like(link_free)
    t_a, _, s_a = _send(MESH, 0, 2, 0, link_free, link_flits)  # reaches router 1 at 2
    t_b, _, s_b = _send(MESH, 1, 2, 2, link_free, link_flits)  # enters router 1 at 2 too
    assert (t_a, s_a) == (4, 0)
    assert (t_b, s_b) == (5, 1)  # waited one cycle for the link
    assert link_flits[1 * N_PORTS + PORT_EAST] == 2


def test_injection_port_serialises_multicast():
    link_free = np.zeros(n_links(MESH.n_pe), np.int64)
    link_flits = np.zeros_like(link_free)
    times = [_send(MESH, 0, d, 0, link_free, link_flits)[0] for d in (6, 12, 18)]  # north column
    # injected at 0, 1, 2; the first shares every north link with the others, no extra stall
    assert times == [0 + 2, 1 + 4, 2 + 6]


def test_full_fifo_blocks_the_ejection_port():
    link_free = np.zeros(n_links(MESH.n_pe), np.int64)
    link_flits = np.zeros_like(link_free)
    # FIFO room only at cycle 50: the packet waits, and the port stays blocked until then
    t, port_stall, fifo_stall = eject(3 * N_PORTS, 10, 50, 2, 1, link_free, link_flits)
    assert (t, port_stall, fifo_stall) == (52, 0, 40)
    t2, port_stall2, fifo_stall2 = eject(3 * N_PORTS, 11, 0, 2, 1, link_free, link_flits)
    assert (t2, port_stall2, fifo_stall2) == (53, 40, 0)


def _buffered(mesh, depth):
    from yoso_backend.noc import route_table

    links, n_hops = route_table(mesh.width, mesh.n_pe)
    nl = n_links(mesh.n_pe)
    return links, n_hops, np.zeros(nl, np.int64), np.zeros(nl, np.int64), np.zeros((nl, depth), np.int64), np.zeros(nl, np.int64)


def _send_b(state, mesh, src, dst, t, room=0):
    from yoso_backend.noc import leave, route_buffered

    links, n_hops, link_free, link_flits, buf, bpos = state
    inj = mesh.n_pe * N_PORTS + src
    t_ready, hops, stall, last = route_buffered(src * mesh.n_pe + dst, t, 2, 1, link_free, link_flits, inj, links,
                                                n_hops, buf, bpos)
    t_fifo, port_stall, fifo_stall = eject(dst * N_PORTS, t_ready, room, 2, 1, link_free, link_flits)
    leave(last, t_fifo - 2, buf, bpos, buf.shape[1])
    return t_fifo, stall + port_stall


def test_full_router_buffers_push_back_hop_by_hop():
    # buffers of one flit: A's ejection at PE 2 is blocked until 100; B (same path) waits in router 1,
    # and C (to PE 1 only) is blocked behind B in router 0's east link: head-of-line back-pressure
    s = _buffered(MESH, 1)
    assert _send_b(s, MESH, 0, 2, 0, room=100) == (102, 0)
    t_b, stall_b = _send_b(s, MESH, 0, 2, 1)
    assert t_b == 104 and stall_b == 1 + 96 + 0  # 1 at router 0 (A still in router 1), 96 at router 1
    t_c, stall_c = _send_b(s, MESH, 0, 1, 2)
    assert t_c >= 100 + 2 + 2 and stall_c >= 98


@given(st.lists(st.tuples(st.integers(0, 41), st.integers(0, 41), st.integers(0, 30)), min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_deep_buffers_equal_the_unbuffered_model(packets):
    s = _buffered(MESH, 64)
    link_free = np.zeros(n_links(MESH.n_pe), np.int64)
    link_flits = np.zeros_like(link_free)
    for src, dst, t in packets:
        t_ready, _, stall = _send(MESH, src, dst, t, link_free, link_flits)
        t_fifo, port_stall, _ = eject(dst * N_PORTS, t_ready, 0, 2, 1, link_free, link_flits)
        assert _send_b(s, MESH, src, dst, t) == (t_fifo, stall + port_stall)
