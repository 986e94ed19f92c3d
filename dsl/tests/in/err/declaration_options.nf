# E0111: options a declaration does not take, and ones it cannot do without.
policy opts on xdp {
    counter hits: capacity 100
    limiter slow: key ip.src, capacity 10
    limiter odd: key ip.src, rate 10/s, burst 5, dynamic
    rule a: over slow => drop
    rule b: over odd => count hits, drop
    default pass
}
