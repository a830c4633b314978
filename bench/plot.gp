# plot.gp - the figures of make bench (gnuplot, Debian's gnuplot-nox):
#   gnuplot -e "dir='build/bench-report'" bench/plot.gp
# reads dir/decode_latency.{alone,prefill} (bench_prefill: sorted latencies
# in ms) and dir/cold_depth.dat (bench_cold: io-depth, rows/s, fio IOPS) and
# writes dir/decode_latency.png and dir/cold_depth.png.
if (!exists("dir")) dir = "build/bench-report"
set terminal pngcairo size 900,560 font ",11"

set output dir."/decode_latency.png"
set title "4096-row lookups: latency alone and next to a 1M-row prefill stream"
set xlabel "latency (ms, log scale)"
set ylabel "fraction of lookups at or below"
set logscale x
set key bottom right
set grid
stats dir."/decode_latency.alone" using 1 nooutput name "A"
stats dir."/decode_latency.prefill" using 1 nooutput name "P"
plot dir."/decode_latency.alone" using 1:($0 + 1) / A_records with lines lw 2 title "alone", \
     dir."/decode_latency.prefill" using 1:($0 + 1) / P_records with lines lw 2 title "under prefill"

set output dir."/cold_depth.png"
set title "Cold 4096-row lookups (evicted table) against engramd --io-depth"
unset logscale
set logscale x 2
set xlabel "--io-depth (reads in flight)"
set ylabel "rows/s"
set key top left
plot dir."/cold_depth.dat" using 1:2 with linespoints lw 2 pt 7 title "engramd, page-cache mode", \
     dir."/cold_depth.dat" using 1:3 with lines lw 2 dt 2 title "fio 4 KiB random reads, QD32 buffered"
