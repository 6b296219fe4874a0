// commands.h: the three blaster subcommands; each returns the process exit status.
#pragma once
#include "options.h"

namespace sluice::blaster {

int run_send(send_options o);  // by value: fills in a random run id
int run_sink(const sink_options& o);
int run_verify(const verify_options& o);

}  // namespace sluice::blaster
