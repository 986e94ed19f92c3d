# E0119: a file of constants only has nothing to compile.
const web = 80
const dns = 53
