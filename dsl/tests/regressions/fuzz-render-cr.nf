# Every construct of the v1 language onpce, on xdp.
const WEB = 80
const 