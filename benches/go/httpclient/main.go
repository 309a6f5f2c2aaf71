// Go's http.Client for the HTTP client comparison (benches/scripts/http_client.py):
// `httpclient <url> <goroutines> <requests per goroutine>`. Each goroutine does keep-alive
// GETs one after another and reads every body to its end; the transport keeps as many idle
// connections per host as there are goroutines (Go's default is 2, which would measure
// dialing, not the client). Prints the requests per second. GOMAXPROCS comes from the
// environment.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	url := os.Args[1]
	gs, _ := strconv.Atoi(os.Args[2])
	per, _ := strconv.Atoi(os.Args[3])
	tr := &http.Transport{MaxIdleConnsPerHost: gs, MaxIdleConns: gs}
	c := &http.Client{Transport: tr}
	get := func() {
		resp, err := c.Get(url)
		if err != nil {
			panic(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			panic(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			panic(resp.Status)
		}
	}
	// Warm-up: one connection per goroutine.
	var wg sync.WaitGroup
	for i := 0; i < gs; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); get() }()
	}
	wg.Wait()
	start := time.Now()
	for i := 0; i < gs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < per; j++ {
				get()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("%.0f\n", float64(gs*per)/secs)
}
