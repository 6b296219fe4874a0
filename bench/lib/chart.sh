# chart.sh: draws the relay benchmark's accepted and delivered msg/s and p99 latency over time with gnuplot (sourced).
# Untrusted input: none (CSV files the benchmark wrote).

# draw_relay_chart OUT_DIR SUBTITLE: reads OUT_DIR/series-<run>.csv (as written by
# `blaster send --interval --series`) and OUT_DIR/delivered-<run>.csv (queue_times.py
# --series), and writes OUT_DIR/relay.png.
draw_relay_chart() {
  local out=$1 subtitle=$2 s f
  command -v gnuplot >/dev/null || { echo "gnuplot missing (apt-get install gnuplot-nox): no chart" >&2; return 0; }
  local plots=() p99s=()
  for s in sluice rollup postfix; do
    f=$out/series-$s.csv  # none with --client smtp-source
    if [ -s "$f" ]; then
      plots+=("'$f' using 1:4 with lines lw 2 title '$s accepted msg/s'")
      p99s+=("'$f' using 1:8 with lines dt 2 lw 1 axes x1y2 title '$s p99 time to 250 (ms)'")
    fi
    f=$out/delivered-$s.csv
    [ -s "$f" ] && plots+=("'$f' using 1:3 with steps lw 2 title '$s delivered msg/s'")
  done
  [ ${#plots[@]} -gt 0 ] || return 0
  local all; all=$(IFS=,; echo "${plots[*]}${p99s[*]:+,${p99s[*]}}")
  gnuplot <<GP
set terminal pngcairo size 1000,500 noenhanced
set output '$out/relay.png'
set datafile separator ','
set key outside bottom center horizontal
set title "relay: blaster send -> MTA -> blaster sink\n$subtitle"
set xlabel 'seconds from the start of the load'
set ylabel 'msg/s'
set y2label 'p99 time to 250 (ms)'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set grid
plot $all
GP
}
