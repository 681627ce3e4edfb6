// rend-loadgen: load and correctness client for memcached-protocol servers. See loadgen.h.
#include "loadgen/loadgen.h"

int main(int argc, char** argv) { return rend::loadgen::main_entry(argc, argv); }
