# A policy named outside ASCII: the diagnostic says so, not "expected `on`".
policy naïve on xdp {
    default pass
}
