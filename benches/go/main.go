// Go 1.19 running the comparison workloads: `gobench <workload> <procs> <n>`.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func rss() uint64 { return status("VmRSS:") }

// status reads a kB field of /proc/self/status, in bytes.
func status(field string) uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			f := strings.Fields(l)
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func done(wg *sync.WaitGroup) { wg.Done() }

//go:noinline
func bump(x *uint64) { *x++ }

//go:noinline
func noDefer(x *uint64) { bump(x) }

// Open-coded (Go 1.14+).
//
//go:noinline
func openDefer(x *uint64) { defer bump(x) }

// A defer in a loop is a heap defer (runtime.deferproc).
//
//go:noinline
func heapDefer(x *uint64, k int) {
	for i := 0; i < k; i++ {
		defer bump(x)
	}
}

//go:noinline
func panicRecover(x *uint64) {
	defer func() {
		if recover() != nil {
			*x++
		}
	}()
	panic("boom")
}

// descend recurses depth frames, then panics; with drops, each frame defers a bump (the
// depth rows' per-frame deferred call; gort's rows hold a Drop per frame).
//
//go:noinline
func descend(x *uint64, depth int, drops bool) uint64 {
	if depth == 0 {
		panic("boom")
	}
	if drops {
		defer bump(x)
	}
	return descend(x, depth-1, drops) + 1
}

// panicAtDepth recovers a panic raised depth frames below it.
//
//go:noinline
func panicAtDepth(x *uint64, depth int, drops bool) {
	defer func() {
		if recover() != nil {
			*x++
		}
	}()
	descend(x, depth, drops)
}

// depthWorkload parses panic_depth_N / panic_drop_N.
func depthWorkload(w string) (int, bool, bool) {
	for _, p := range []struct {
		prefix string
		drops  bool
	}{{"panic_depth_", false}, {"panic_drop_", true}} {
		if strings.HasPrefix(w, p.prefix) {
			d, err := strconv.Atoi(strings.TrimPrefix(w, p.prefix))
			return d, p.drops, err == nil
		}
	}
	return 0, false, false
}

// timeCalls times n calls of f after min(n, 1000) untimed ones, as gort_peer's `defers::time`
// does (the same warm-up on both sides).
func timeCalls(n uint64, f func(*uint64)) float64 {
	var x uint64
	warm := n
	if warm > 1000 {
		warm = 1000
	}
	for i := uint64(0); i < warm; i++ {
		f(&x)
	}
	x = 0
	t := time.Now()
	for i := uint64(0); i < n; i++ {
		f(&x)
	}
	if x < n {
		panic("lost calls")
	}
	return float64(time.Since(t).Nanoseconds()) / float64(n)
}

// deep's recursion: 1 KiB of frame a level, kept on the stack (touchPad does not let it
// escape).
//
//go:noinline
func dive(n uint64) uint64 {
	var pad [128]uint64
	for i := range pad {
		pad[i] = n
	}
	touchPad(&pad)
	if n == 0 {
		return pad[0]
	}
	return dive(n-1) + pad[1]
}

//go:noinline
func touchPad(p *[128]uint64) uint64 { return p[p[0]%128] }

func skynet(num, size, div uint64, out chan<- uint64) {
	if size == 1 {
		out <- num
		return
	}
	per := size / div
	c := make(chan uint64) // unbuffered, as in the classic benchmark
	for i := uint64(0); i < div; i++ {
		go skynet(num+i*per, per, div, c)
	}
	var sum uint64
	for i := uint64(0); i < div; i++ {
		sum += <-c
	}
	out <- sum
}

// idleClient is the idle_conns client, in a process of its own: it connects n times,
// round-robin over the addresses, prints "ready" and holds the connections until its
// standard input closes.
func idleClient(addrs []string, n int) {
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addrs[i%len(addrs)])
		if err != nil {
			fmt.Fprintf(os.Stderr, "idle_client: connection %d: %v\n", i, err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// idleConns: as gort_peer's, a goroutine per idle connection parked in a Read into a 4 KiB
// buffer of its own; RSS and page tables per connection, at once or after the settle.
func idleConns(n uint64, settled bool) float64 {
	mem := func() uint64 { return rss() + status("VmPTE:") }
	before := mem()
	var parked int64
	var addrs []string
	for i := 0; i < 4; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		addrs = append(addrs, ln.Addr().String())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					buf := make([]byte, 4096)
					atomic.AddInt64(&parked, 1)
					c.Read(buf)
				}()
			}
		}()
	}
	cmd := exec.Command(os.Args[0], "idle_client", strings.Join(addrs, ","), strconv.FormatUint(n, 10))
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		panic("the idle client failed")
	}
	for uint64(atomic.LoadInt64(&parked)) < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if settled {
		time.Sleep(settleTime())
	}
	after := mem()
	stdin.Close()
	return float64(after-before) / float64(n)
}

func main() {
	if os.Args[1] == "idle_client" {
		n, _ := strconv.Atoi(os.Args[3])
		idleClient(strings.Split(os.Args[2], ","), n)
	}
	w := os.Args[1]
	procs, _ := strconv.Atoi(os.Args[2])
	n, _ := strconv.ParseUint(os.Args[3], 10, 64)
	runtime.GOMAXPROCS(procs)
	res := make(chan [2]interface{})
	go func() {
		switch w {
		case "spawn":
			var wg sync.WaitGroup
			t := time.Now()
			for i := uint64(0); i < n; i++ {
				wg.Add(1)
				go done(&wg)
			}
			wg.Wait()
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / float64(n), "ns"}
		case "yield":
			var wg sync.WaitGroup
			t := time.Now()
			for k := 0; k < 2; k++ {
				wg.Add(1)
				go func() {
					for i := uint64(0); i < n; i++ {
						runtime.Gosched()
					}
					wg.Done()
				}()
			}
			wg.Wait()
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / float64(2*n), "ns"}
		case "deep":
			const levels, atOnce = 1024, 64
			want := uint64(levels * (levels + 1) / 2)
			slots := make(chan struct{}, atOnce)
			var wg sync.WaitGroup
			t := time.Now()
			for i := uint64(0); i < n; i++ {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					if dive(levels) != want {
						panic("bad sum")
					}
					<-slots
					wg.Done()
				}()
			}
			wg.Wait()
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / float64(n), "ns"}
		case "skynet":
			t := time.Now()
			c := make(chan uint64)
			go skynet(0, n, 10, c)
			if s := <-c; s != n*(n-1)/2 {
				panic("bad sum")
			}
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / 1e6, "ms"}
		case "parked_mem", "parked_mem_now":
			// RSS and page tables (VmPTE), as the Rust peers' mem_now; parked_mem_now reads
			// right after the last goroutine parked, parked_mem after the settle.
			mem := func() uint64 { return rss() + status("VmPTE:") }
			before := mem()
			chans, _ := parkN(n)
			if w == "parked_mem" {
				time.Sleep(settleTime())
			}
			after := mem()
			for _, c := range chans {
				close(c)
			}
			res <- [2]interface{}{float64(after-before) / float64(n), "B"}
		case "burst_mem":
			// n goroutines alive at once, then all end; RSS after the settle in percent of the
			// peak (VmHWM), as gort_peer's burst_mem.
			gate := make(chan struct{})
			var parked, ended sync.WaitGroup
			for i := uint64(0); i < n; i++ {
				parked.Add(1)
				ended.Add(1)
				go func() { parked.Done(); <-gate; ended.Done() }()
			}
			parked.Wait()
			close(gate)
			ended.Wait()
			time.Sleep(settleTime())
			peak := status("VmHWM:")
			after := rss()
			fmt.Fprintf(os.Stderr, "go: peak %d MiB, after the settle %d MiB\n", peak>>20, after>>20)
			res <- [2]interface{}{float64(after) * 100 / float64(peak), "%"}
		case "deadline_herd":
			// As gort_peer's: n goroutines in ReadFrom on UDP sockets of their own, one read
			// deadline 3 s away; mean lateness in µs.
			conns := make([]net.PacketConn, n)
			for i := range conns {
				c, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					panic(err)
				}
				conns[i] = c
			}
			deadline := time.Now().Add(3 * time.Second)
			late := make(chan int64, n)
			for _, c := range conns {
				go func(c net.PacketConn) {
					c.SetReadDeadline(deadline)
					buf := make([]byte, 64)
					if _, _, err := c.ReadFrom(buf); err == nil {
						panic("nobody sends")
					}
					late <- int64(time.Since(deadline))
				}(c)
			}
			time.Sleep(time.Until(deadline) - 50*time.Millisecond)
			before := rss()
			v := make([]int64, n)
			for i := range v {
				v[i] = <-late
			}
			atEnd := rss()
			time.Sleep(3 * time.Second)
			after := rss()
			sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
			var sum int64
			for _, x := range v {
				sum += x
			}
			mean := float64(sum) / float64(n) / 1e3
			fmt.Fprintf(os.Stderr, "go: late mean %.1f ms, p50 %.1f ms, max %.1f ms; RSS before the deadline %d MiB, when all woke %d MiB, 3 s later %d MiB, peak %d MiB\n",
				mean/1e3, float64(v[n/2])/1e6, float64(v[n-1])/1e6, before>>20, atEnd>>20, after>>20, status("VmHWM:")>>20)
			res <- [2]interface{}{mean, "us"}
		case "idle_conns", "idle_conns_now":
			res <- [2]interface{}{idleConns(n, w == "idle_conns"), "B"}
		case "wake_parked":
			// As gort_peer's: n goroutines parked on channels of their own for 2 s, then all
			// woken; ns per goroutine from the first wake-up to the last one's end.
			var started, ended sync.WaitGroup
			chans := make([]chan struct{}, n)
			for i := range chans {
				c := make(chan struct{})
				chans[i] = c
				started.Add(1)
				ended.Add(1)
				go func() { started.Done(); <-c; ended.Done() }()
			}
			started.Wait()
			time.Sleep(2 * time.Second)
			t := time.Now()
			for _, c := range chans {
				close(c)
			}
			ended.Wait()
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / float64(n), "ns"}
		case "parked_create":
			chans, took := parkN(n)
			for _, c := range chans {
				close(c)
			}
			res <- [2]interface{}{float64(took.Nanoseconds()) / float64(n), "ns"}
		case "pingpong":
			ping, pong := make(chan uint64), make(chan uint64)
			go func() {
				for v := range ping {
					pong <- v
				}
			}()
			t := time.Now()
			for i := uint64(0); i < n; i++ {
				ping <- i
				<-pong
			}
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / float64(n), "ns"}
		case "ring":
			const ring = 10000
			chans := make([]chan uint64, ring)
			for i := range chans {
				chans[i] = make(chan uint64)
			}
			done := make(chan struct{})
			for i := 0; i < ring; i++ {
				in, out := chans[i], chans[(i+1)%ring]
				go func() {
					for v := range in {
						if v == 0 {
							done <- struct{}{}
						} else {
							out <- v - 1
						}
					}
				}()
			}
			t := time.Now()
			chans[0] <- n
			<-done
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / float64(n), "ns"}
		case "mutex":
			const contenders = 1000
			var mu sync.Mutex
			var wg sync.WaitGroup
			count := uint64(0)
			per := n / contenders
			t := time.Now()
			for k := 0; k < contenders; k++ {
				wg.Add(1)
				go func() {
					for i := uint64(0); i < per; i++ {
						mu.Lock()
						count++
						mu.Unlock()
					}
					wg.Done()
				}()
			}
			wg.Wait()
			if count != per*contenders {
				panic("lost increments")
			}
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / float64(per*contenders), "ns"}
		case "sleepers":
			var wg sync.WaitGroup
			t := time.Now()
			for i := uint64(0); i < n; i++ {
				wg.Add(1)
				d := sleeperDuration(i)
				go func() {
					time.Sleep(d)
					wg.Done()
				}()
			}
			wg.Wait()
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / 1e6, "ms"}
		case "defer_none":
			res <- [2]interface{}{timeCalls(n, noDefer), "ns"}
		case "defer_open":
			res <- [2]interface{}{timeCalls(n, openDefer), "ns"}
		case "defer_list":
			k := listDefers
			res <- [2]interface{}{timeCalls(n, func(x *uint64) { heapDefer(x, k) }) / float64(k), "ns"}
		case "panic_recover":
			res <- [2]interface{}{timeCalls(n, panicRecover), "ns"}
		case "blocking":
			// A system call's enter/exit round trip (entersyscall/exitsyscall) around getpid.
			// Not syscall.Getpid: it is //sysnb in Go 1.19 (RawSyscall), which skips both.
			t := time.Now()
			for i := uint64(0); i < n; i++ {
				syscall.Syscall(syscall.SYS_GETPID, 0, 0, 0)
			}
			res <- [2]interface{}{float64(time.Since(t).Nanoseconds()) / float64(n), "ns"}
		case "tcp_echo":
			res <- [2]interface{}{tcpEcho(n), "ns"}
		default:
			if d, drops, ok := depthWorkload(w); ok {
				res <- [2]interface{}{timeCalls(n, func(x *uint64) { panicAtDepth(x, d, drops) }), "ns"}
				return
			}
			fmt.Fprintln(os.Stderr, "unknown workload", w)
			os.Exit(64)
		}
	}()
	r := <-res
	fmt.Printf("workload=%s procs=%d n=%d value=%.3f unit=%s\n", w, procs, n, r[0], r[1])
}

// TCP echo over loopback: n connections, each ping-ponging 64-byte messages with an echo
// goroutine of the same process, 100,000 messages in all; ns per message.
func tcpEcho(conns uint64) float64 {
	const total, size = 100000, 64
	per := total / conns
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				panic(err)
			}
			go func(c net.Conn) {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}(c)
		}
	}()
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := uint64(0); i < conns; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				panic(err)
			}
			msg := make([]byte, size)
			back := make([]byte, size)
			ready.Done()
			<-start
			for j := uint64(0); j < per; j++ {
				if _, err := c.Write(msg); err != nil {
					panic(err)
				}
				if _, err := io.ReadFull(c, back); err != nil {
					panic(err)
				}
			}
			done.Done()
		}()
	}
	ready.Wait()
	t := time.Now()
	close(start)
	done.Wait()
	return float64(time.Since(t).Nanoseconds()) / float64(per*conns)
}

// How long parked_mem lets parked goroutines settle before reading RSS (every peer): 10 s
// unless GORT_BENCH_SETTLE_MS says otherwise (as in benches/src/lib.rs).
func settleTime() time.Duration {
	if ms, err := strconv.ParseUint(os.Getenv("GORT_BENCH_SETTLE_MS"), 10, 64); err == nil {
		return time.Duration(ms) * time.Millisecond
	}
	return 10 * time.Second
}

// Defers per call in defer_list; the figure is per defer (as in benches/src/lib.rs).
const listDefers = 10

// splitmix64 and sleeperDuration: the sleepers' durations, uniform over 1-10 ms, the same
// on every peer (a copy of benches/src/lib.rs).
func splitmix64(x uint64) uint64 {
	z := x + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func sleeperDuration(i uint64) time.Duration {
	return time.Duration(1000+splitmix64(i)%9001) * time.Microsecond
}

// parkN starts n goroutines that each block receiving from a channel of their own; it
// returns the channels and the time until all had started.
func parkN(n uint64) ([]chan struct{}, time.Duration) {
	t := time.Now()
	var started sync.WaitGroup
	chans := make([]chan struct{}, n)
	for i := range chans {
		c := make(chan struct{})
		chans[i] = c
		started.Add(1)
		go func() { started.Done(); <-c }()
	}
	started.Wait()
	return chans, time.Since(t)
}
