// Java side of the interop tests: the Pulsar Java client (from the distribution's lib/) producing and
// consuming with the options the CLI tools do not expose (compression type per producer, keys, chunking,
// partitioned topics). Compiled on demand by test/support/java.ts into a cache directory; never committed
// compiled.
//
//   produce --url U --topic T --count N [--size BYTES] [--compression NONE|LZ4|ZLIB|ZSTD|SNAPPY]
//           [--keys k1,k2,...] [--hashing murmur3] [--chunking [--chunk-size BYTES]] [--no-batch] [--random] [--token TOKEN] [--ca FILE]
//     prints: SENT <messageId> <key|-> <length> <sha256>
//   bench-consume --url U --topic T --sub S --count N [--queue Q]
//     prints: ELAPSED <seconds after subscribe> <count> SUBSCRIBE <seconds of the subscribe call>
//   bench-produce --url U --topic T --count N [--size BYTES]
//     prints: ELAPSED <seconds from the first send to the last receipt> <count>
//   consume --url U --topic T --sub S --count N [--timeout-ms MS] [--token TOKEN] [--ca FILE]
//     prints: RECV <topic> <key|-> <length> <sha256> <compression-independent property "i">
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.ArrayList;
import java.util.List;
import org.apache.pulsar.client.api.*;

public class KptJava {
  static Map<String, String> parse(String[] args) {
    Map<String, String> m = new HashMap<>();
    for (int i = 1; i < args.length; i++) {
      String a = args[i];
      if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected " + a);
      String k = a.substring(2);
      if (i + 1 < args.length && !args[i + 1].startsWith("--")) m.put(k, args[++i]);
      else m.put(k, "true");
    }
    return m;
  }

  static String sha256(byte[] b) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
  }

  /** Deterministic, compressible payload: message i, `size` bytes. */
  static byte[] payload(int i, int size) {
    byte[] out = new byte[size];
    String text = "message-" + i + " kubeless pulsar trigger interop; ";
    byte[] t = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    for (int j = 0; j < size; j++) out[j] = (j % 4096) < 64 ? (byte) ((j * 31 + i) & 0xff) : t[j % t.length];
    return out;
  }

  static PulsarClient client(Map<String, String> o) throws Exception {
    ClientBuilder b = PulsarClient.builder().serviceUrl(o.get("url")).operationTimeout(60, TimeUnit.SECONDS);
    if (o.containsKey("token")) b.authentication(AuthenticationFactory.token(o.get("token")));
    if (o.containsKey("ca")) b.tlsTrustCertsFilePath(o.get("ca"));
    return b.build();
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> o = parse(args);
    try (PulsarClient c = client(o)) {
      if (args[0].equals("produce")) produce(c, o);
      else if (args[0].equals("consume")) consume(c, o);
      else if (args[0].equals("bench-consume")) benchConsume(c, o);
      else if (args[0].equals("bench-produce")) benchProduce(c, o);
      else throw new IllegalArgumentException("unknown command " + args[0]);
    }
    System.out.flush();
    System.exit(0);
  }

  static void produce(PulsarClient c, Map<String, String> o) throws Exception {
    int count = Integer.parseInt(o.getOrDefault("count", "1"));
    int size = Integer.parseInt(o.getOrDefault("size", "100"));
    String[] keys = o.containsKey("keys") ? o.get("keys").split(",") : null;
    ProducerBuilder<byte[]> pb = c.newProducer().topic(o.get("topic"))
        .compressionType(CompressionType.valueOf(o.getOrDefault("compression", "NONE")))
        .blockIfQueueFull(true).sendTimeout(60, TimeUnit.SECONDS);
    if ("murmur3".equals(o.get("hashing"))) pb.hashingScheme(HashingScheme.Murmur3_32Hash);
    if (o.containsKey("chunking")) pb.enableChunking(true).enableBatching(false);
    if (o.containsKey("chunk-size")) pb.chunkMaxMessageSize(Integer.parseInt(o.get("chunk-size")));
    else if (o.containsKey("no-batch")) pb.enableBatching(false);
    else pb.enableBatching(true).batchingMaxPublishDelay(5, TimeUnit.MILLISECONDS);
    try (Producer<byte[]> p = pb.create()) {
      List<CompletableFuture<MessageId>> futures = new ArrayList<>();
      List<String> lines = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        byte[] body = payload(i, size);
        if (o.containsKey("random")) new java.util.Random(i).nextBytes(body);
        TypedMessageBuilder<byte[]> m = p.newMessage().value(body).property("i", Integer.toString(i));
        String key = keys == null ? "-" : keys[i % keys.length];
        if (keys != null) m.key(key);
        futures.add(m.sendAsync());
        lines.add(key + " " + body.length + " " + sha256(body));
      }
      p.flush();
      for (int i = 0; i < count; i++) System.out.println("SENT " + futures.get(i).get() + " " + lines.get(i));
    }
  }

  /**
   * Timed like our benchmarks: subscribe, then receive and ack `count` messages. Prints ELAPSED <seconds from
   * subscribed to the last message> <count> SUBSCRIBE <seconds the subscribe call took> (the client is built
   * before either clock starts; the JVM start-up is in neither).
   */
  static void benchConsume(PulsarClient c, Map<String, String> o) throws Exception {
    int count = Integer.parseInt(o.getOrDefault("count", "1"));
    int queue = Integer.parseInt(o.getOrDefault("queue", "1000"));
    long ts = System.nanoTime();
    try (Consumer<byte[]> con = c.newConsumer().topic(o.get("topic")).subscriptionName(o.get("sub"))
        .receiverQueueSize(queue).subscriptionInitialPosition(SubscriptionInitialPosition.Earliest).subscribe()) {
      long t0 = System.nanoTime();
      for (int n = 0; n < count; n++) {
        Message<byte[]> m = con.receive();
        con.acknowledgeAsync(m);
      }
      long t1 = System.nanoTime();
      System.out.println("ELAPSED " + (t1 - t0) / 1e9 + " " + count + " SUBSCRIBE " + (t0 - ts) / 1e9);
    }
  }

  /**
   * Timed like our producer benchmark: batches of up to 1000 messages / 128 KiB / 10 ms, 10000 pending, async
   * sends of one payload; the clock runs from the first send to the last receipt (producer creation outside).
   */
  static void benchProduce(PulsarClient c, Map<String, String> o) throws Exception {
    int count = Integer.parseInt(o.getOrDefault("count", "1"));
    byte[] body = new byte[Integer.parseInt(o.getOrDefault("size", "1024"))];
    java.util.Arrays.fill(body, (byte) 0x61);
    try (Producer<byte[]> p = c.newProducer().topic(o.get("topic")).enableBatching(true)
        .batchingMaxMessages(1000).batchingMaxBytes(128 * 1024).batchingMaxPublishDelay(10, TimeUnit.MILLISECONDS)
        .maxPendingMessages(10000).blockIfQueueFull(true).sendTimeout(60, TimeUnit.SECONDS).create()) {
      long t0 = System.nanoTime();
      CompletableFuture<MessageId> last = null;
      for (int i = 0; i < count; i++) last = p.sendAsync(body);
      p.flush();
      if (last != null) last.get();
      System.out.println("ELAPSED " + (System.nanoTime() - t0) / 1e9 + " " + count);
    }
  }

  static void consume(PulsarClient c, Map<String, String> o) throws Exception {
    int count = Integer.parseInt(o.getOrDefault("count", "1"));
    long timeout = Long.parseLong(o.getOrDefault("timeout-ms", "60000"));
    try (Consumer<byte[]> con = c.newConsumer().topic(o.get("topic")).subscriptionName(o.get("sub"))
        .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest).subscribe()) {
      long deadline = System.currentTimeMillis() + timeout;
      for (int n = 0; n < count; n++) {
        long left = deadline - System.currentTimeMillis();
        Message<byte[]> m = left > 0 ? con.receive((int) left, TimeUnit.MILLISECONDS) : null;
        if (m == null) {
          System.err.println("timeout after " + n + " of " + count + " messages");
          System.exit(2);
        }
        byte[] v = m.getValue();
        System.out.println("RECV " + m.getTopicName() + " " + (m.hasKey() ? m.getKey() : "-") + " " + v.length + " "
            + sha256(v) + " " + m.getProperty("i"));
        con.acknowledge(m);
      }
    }
  }
}
