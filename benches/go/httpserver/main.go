// Go's net/http serving "Hello, World!" for the HTTP comparison (benches/scripts/http.py):
// `httpserver <addr>`. GOMAXPROCS comes from the environment.
package main

import (
	"net/http"
	"os"
)

func main() {
	addr := "127.0.0.1:8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	hello := []byte("Hello, World!")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(hello)
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		panic(err)
	}
}
