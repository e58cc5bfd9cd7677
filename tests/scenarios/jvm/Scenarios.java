// JVM programs in the states the timeout detector must classify, against 127.0.0.1:PORT.
//
//   java Scenarios url-no-timeout PORT     HttpURLConnection, no setReadTimeout        missing
//   java Scenarios socket-no-timeout PORT  Socket, no setSoTimeout, read               missing
//   java Scenarios url-timeout-large PORT  HttpURLConnection.setReadTimeout(10 min)    too_large
//   java Scenarios retry-small PORT        100 ms read timeout, retry forever          too_small
//   java Scenarios pool-idle               idle ThreadPoolExecutor (8 core threads)    ok
//   java Scenarios server-idle PORT        idle ServerSocket.accept()                  ok
//   java Scenarios queue-take              consumers in BlockingQueue.take()           ok
//   java Scenarios threads N MODE          N threads parked, or waking every 50 ms (bench)
//
// Each mode prints "ready" once set up, then runs until killed (bounded by one hour).
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

public class Scenarios {
    static final long DEADLINE = System.nanoTime() + TimeUnit.HOURS.toNanos(1);

    static void ready() {
        System.out.println("ready");
        System.out.flush();
    }

    static void idle() throws InterruptedException {
        Thread.sleep(TimeUnit.HOURS.toMillis(1));
    }

    static void get(String port, int readTimeoutMs) throws Exception {
        HttpURLConnection c =
                (HttpURLConnection) new URL("http://127.0.0.1:" + port + "/").openConnection();
        if (readTimeoutMs > 0) {
            c.setReadTimeout(readTimeoutMs);
        }
        c.connect();
        ready();
        try (InputStream in = c.getInputStream()) {
            in.readAllBytes();
        }
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        switch (mode) {
            case "url-no-timeout":
                get(args[1], 0);
                break;
            case "url-timeout-large":
                get(args[1], 600_000);
                break;
            case "socket-no-timeout": {
                Socket s = new Socket("127.0.0.1", Integer.parseInt(args[1]));
                s.getOutputStream().write("GET\n".getBytes());
                ready();
                s.getInputStream().read();
                break;
            }
            case "retry-small": {
                int port = Integer.parseInt(args[1]);
                ready();
                while (System.nanoTime() < DEADLINE) {
                    try (Socket s = new Socket()) {
                        s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 1000);
                        s.setSoTimeout(100);
                        OutputStream out = s.getOutputStream();
                        out.write("GET\n".getBytes());
                        s.getInputStream().read();
                    } catch (SocketTimeoutException e) {
                        // retry at once: the bug under test
                    }
                }
                break;
            }
            case "pool-idle": {
                ThreadPoolExecutor pool = new ThreadPoolExecutor(
                        8, 8, 60, TimeUnit.SECONDS, new LinkedBlockingQueue<>());
                pool.prestartAllCoreThreads();
                ready();
                idle();
                break;
            }
            case "server-idle": {
                ServerSocket ss = new ServerSocket(
                        Integer.parseInt(args[1]), 50, InetAddress.getLoopbackAddress());
                ready();
                ss.accept();
                break;
            }
            case "queue-take": {
                BlockingQueue<Runnable> q = new ArrayBlockingQueue<>(16);
                for (int i = 0; i < 4; i++) {
                    Thread t = new Thread(() -> {
                        try {
                            q.take().run();
                        } catch (InterruptedException e) {
                            return;
                        }
                    }, "consumer-" + i);
                    t.setDaemon(true);
                    t.start();
                }
                ready();
                idle();
                break;
            }
            case "threads": {
                int n = Integer.parseInt(args[1]);
                boolean tick = args.length > 2 && args[2].equals("tick");
                Object lock = new Object();
                for (int i = 0; i < n; i++) {
                    Thread t = new Thread(() -> {
                        try {
                            if (tick) {
                                while (System.nanoTime() < DEADLINE) {
                                    Thread.sleep(50);
                                }
                            } else {
                                synchronized (lock) {
                                    lock.wait();
                                }
                            }
                        } catch (InterruptedException e) {
                            return;
                        }
                    });
                    t.setDaemon(true);
                    t.start();
                }
                ready();
                idle();
                break;
            }
            default:
                System.err.println("unknown mode " + mode);
                System.exit(2);
        }
    }
}
