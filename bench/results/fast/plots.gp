reset
set terminal svg size 1000,520 dynamic font 'sans,11'
set datafile missing '-'
set key outside right top
set grid ytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [1:*]
set xtics rotate by -30
set ylabel 'operations/s (median, log scale)'
set title 'Throughput per workload, 1 thread, 1000000 keys, fast'
set output 'bench/results/fast/throughput-t1.svg'
plot for [i=2:7] 'bench/results/fast/throughput-t1.dat' using i:xtic(1) title columnheader(i)
reset
set terminal svg size 1000,520 dynamic font 'sans,11'
set datafile missing '-'
set key outside right top
set grid ytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [1:*]
set xtics rotate by -30
set ylabel 'operations/s (median, log scale)'
set title 'Throughput per workload, 2 threads, 1000000 keys, fast'
set output 'bench/results/fast/throughput-t2.svg'
plot for [i=2:7] 'bench/results/fast/throughput-t2.dat' using i:xtic(1) title columnheader(i)
