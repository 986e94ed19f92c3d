policy p on tc sideways {
    default pass
}
policy q on socket {
    default pass
}
