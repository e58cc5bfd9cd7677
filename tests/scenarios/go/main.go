// Go programs in the states the timeout detector must classify, against 127.0.0.1:PORT.
//
//	scenario get-no-timeout PORT   http.Get with the zero-value http.Client             missing
//	scenario dial-deadline PORT    net.Dial + Read with a 10-minute read deadline       too_large
//	scenario server-idle PORT      an idle net/http server                              ok
//	scenario keepalive-idle PORT   a client whose answered connection idles in the pool ok
//
// Each mode prints "ready" once set up, then runs until killed. No mode starts a timer of its
// own beyond the one under test: the netpoller's epoll_wait timeout is the next runtime timer.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func ready() { fmt.Println("ready") }

func main() {
	mode, port := os.Args[1], ""
	if len(os.Args) > 2 {
		port = os.Args[2]
	}
	addr := "127.0.0.1:" + port
	switch mode {
	case "get-no-timeout":
		var c http.Client // the zero value: no Timeout
		ready()
		resp, err := c.Get("http://" + addr + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
		}
	case "dial-deadline":
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			panic(err)
		}
		conn.Write([]byte("GET\n"))
		conn.SetReadDeadline(time.Now().Add(10 * time.Minute))
		ready()
		buf := make([]byte, 100)
		conn.Read(buf)
	case "server-idle":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			panic(err)
		}
		ready()
		http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	case "keepalive-idle":
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ready()
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(2)
	}
	select {}
}
