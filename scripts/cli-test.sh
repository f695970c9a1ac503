#!/usr/bin/env bash
# End-to-end checks of the `brook` executable: a real log written by `brook perf log`'s engine,
# dumped and checked by `brook log dump`, and a damaged index reported with a non-zero exit;
# then the client tools (topic, config, produce, consume, perf) against a `brook serve` started
# here on a free port and stopped by its PID on exit.
set -euo pipefail
brook=${1:?usage: cli-test.sh PATH_TO_BROOK}
work=$(mktemp -d /tmp/brook-cli-XXXXXX)
broker_pid=
controller_pid=
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; [ -n "$controller_pid" ] && kill "$controller_pid" 2>/dev/null; rm -rf "$work"' EXIT
passed=0; failed=0
check() {  # check NAME COMMAND...: passes when the command succeeds
    local name=$1; shift
    if "$@" >"$work/out" 2>&1; then passed=$((passed + 1)); echo "ok   $name"
    else failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$work/out" | tail -20; fi
}

check "perf log runs and recovers a killed log" bash -c "'$brook' perf log --dir '$work/perf' --bytes 8000000 > '$work/perf.txt'"
check "perf log reports the raw disk beside the log" grep -q "raw pwrite" "$work/perf.txt"
check "perf log cleans up after itself" test ! -e "$work/perf"

# Segments written by the engine, kept for the dump tool.
check "perf log keeps its log when asked" "$brook" perf log --dir "$work/keep" --bytes 300000 --segment-bytes 100000 --keep
seg=$(ls "$work/keep/perf-0/"*.log | head -1)
check "log dump prints batches" bash -c "'$brook' log dump '$seg' | grep -q 'baseOffset: 0 lastOffset:'"
check "log dump --print-data-log prints records" bash -c "'$brook' log dump --print-data-log '$seg' | grep -q '| offset: 0 CreateTime:'"
check "log dump checks the offset index" "$brook" log dump "${seg%.log}.index" "${seg%.log}.timeindex"
printf '\x00\x00\x00\x05\x00\x00\x00\x07' | dd of="${seg%.log}.index" bs=1 seek=0 conv=notrunc status=none
check "a damaged index is reported (exit 1)" bash -c "! '$brook' log dump '${seg%.log}.index'"
check "a missing file is a readable error" bash -c "'$brook' log dump '$work/nope/00000000000000000000.log' 2>&1 | grep -q 'open failed'; test \${PIPESTATUS[0]} -ne 0"

# The client tools against a real broker.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$brook" serve --override "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_PLAINTEXT://127.0.0.1:$sport" --override "log.dirs=$work/nested/broker,$work/second" --override "http.listeners=http://127.0.0.1:$hport" --override "mqtt.listeners=mqtt://127.0.0.1:$mport" 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
s="--bootstrap-server 127.0.0.1:$port"
check "serve makes its log dir with its parents, says where it listens and keeps its data" grep -q "listening on .*$port.*data in $work/nested/broker" "$work/broker.log"
check "serve is the one voter of its own metadata quorum" test -d "$work/nested/broker/__cluster_metadata-0"
check "log dump --cluster-metadata-decoder prints the metadata log's records" bash -c "'$brook' log dump --cluster-metadata-decoder '$work/nested/broker/__cluster_metadata-0/log/00000000000000000000.log' | grep -q 'RegisterBrokerRecord(broker 1'"
check "its controller answers on the CONTROLLER listener given" bash -c "'$brook' cluster describe --controller 127.0.0.1:$cport | grep -q '^broker=1 .*fenced=false'"
check "topic create" "$brook" topic create cli --partitions 2 --config retention.ms=3600000 $s
check "topic list" bash -c "'$brook' topic list $s | grep -qx cli"
check "topic describe shows partitions and the config set" bash -c "'$brook' topic describe cli $s | grep -q 'PartitionCount: 2.*retention.ms=3600000'"
check "topic create refuses a duplicate" bash -c "'$brook' topic create cli $s 2>&1 | grep -q TOPIC_ALREADY_EXISTS"
check "produce with keys and a header" bash -c "printf 'a:1\nb:2\nc:3\n' | '$brook' produce --topic cli --key-separator : --header src=cli $s"
check "consume from the beginning" bash -c "'$brook' consume --topic cli --from-beginning --max-messages 3 --print-key --print-headers $s | sort | tr '\t' ' ' | tr '\n' '|' | grep -qx 'src=cli a 1|src=cli b 2|src=cli c 3|'"
check "consume from an offset" bash -c "'$brook' consume --topic cli --partition \$('$brook' consume --topic cli --from-beginning --max-messages 1 --print-offset $s | cut -f1) --offset 0 --max-messages 1 $s | grep -q ."
http_get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"; }
check "/metrics counts the requests just made, by API" bash -c "$(declare -f http_get); http_get http://127.0.0.1:$hport/metrics | grep -q '^brook_requests_total{api=\"Produce\"'"
check "/ready says the broker serves" bash -c "$(declare -f http_get); http_get http://127.0.0.1:$hport/ready | grep -qx ready"
check "log-dirs describe lists both dirs and the replicas" bash -c "'$brook' log-dirs describe $s | grep -q '^$work/second' && '$brook' log-dirs describe $s | grep -c '^  cli-[01] ' | grep -qx 2"
check "log-dirs move takes both replicas to the second dir" bash -c "'$brook' log-dirs move cli:0=$work/second cli:1=$work/second $s | grep -c moving | grep -qx 2"
check "and they get there" bash -c "for i in \$(seq 1 50); do test -d '$work/second/cli-0' && test -d '$work/second/cli-1' && ! test -e '$work/nested/broker/cli-0' && ! test -e '$work/nested/broker/cli-1' && exit 0; sleep 0.2; done; exit 1"
check "with their records" bash -c "'$brook' consume --topic cli --from-beginning --max-messages 3 $s | sort | tr '\n' ' ' | grep -qx '1 2 3 '"
check "log-dirs move refuses a dir that is not a log dir" bash -c "'$brook' log-dirs move cli:0=/nowhere $s 2>&1 | grep -q LOG_DIR_NOT_FOUND"
check "config alter and describe" bash -c "'$brook' config alter --topic cli --add-config cleanup.policy=compact $s && '$brook' config describe --topic cli $s | grep -qx 'cleanup.policy=compact.(topic)'"
check "config alter refuses an unknown name" bash -c "'$brook' config alter --topic cli --add-config no.such=1 $s 2>&1 | grep -q INVALID_CONFIG"
check "topic alter adds partitions" bash -c "'$brook' topic alter cli --partitions 3 $s && '$brook' topic describe cli $s | grep -q 'PartitionCount: 3'"
check "perf produce" bash -c "'$brook' perf produce --topic perf --num-records 20000 --record-size 50 $s | grep -q '20000 records sent'"
check "perf consume" bash -c "'$brook' perf consume --topic perf --messages 20000 $s | grep -q '20000 records read'"
check "perf produce --compression zstd" bash -c "'$brook' perf produce --topic perf-zstd --num-records 20000 --record-size 50 --compression zstd $s | grep -q '20000 records sent'"
check "perf consume reads the zstd batches" bash -c "'$brook' perf consume --topic perf-zstd --messages 20000 $s | grep -q '20000 records read'"
check "perf produce --keys fills a compacted topic" bash -c "'$brook' topic create perf-keys --config cleanup.policy=compact $s && '$brook' perf produce --topic perf-keys --num-records 2000 --record-size 20 --keys 10 $s | grep -q '2000 records sent' && '$brook' consume --topic perf-keys --from-beginning --max-messages 12 --print-key $s | cut -f1 | sort -u | wc -l | grep -qx 10"
check "perf codecs" bash -c "'$brook' perf codecs --mib 1 --seconds 0 | grep -q '^zstd: '"
check "an unknown codec is refused" bash -c "'$brook' produce --topic x --compression brotli $s < /dev/null 2>&1 | grep -q 'takes none, gzip'"
check "group reset-offsets is a dry run by default" bash -c "'$brook' group reset-offsets --group cg --topic cli --to-latest $s | grep -q 'dry run' && ! '$brook' group list $s | grep -q '^cg '"
check "group reset-offsets --execute commits" bash -c "'$brook' group reset-offsets --group cg --topic cli --to-latest --execute $s | grep -q 'Committed 3 offset'"
check "group list shows the group" bash -c "'$brook' group list $s | grep -q '^cg  *classic  *Empty'"
check "group describe shows offsets and lag" bash -c "'$brook' group describe cg $s | awk '\$2==\"cli\" && \$6==\"0\"' | wc -l | grep -qx 3"
check "group reset-offsets --shift-by moves back" bash -c "'$brook' group reset-offsets --group cg --all-topics --shift-by -1 --execute $s >/dev/null && '$brook' group describe cg $s | awk '\$2==\"cli\" && \$6==\"1\"' | grep -q ."
check "group delete" bash -c "'$brook' group delete cg $s && ! '$brook' group list $s | grep -q '^cg '"
check "group delete of an unknown group fails readably" bash -c "'$brook' group delete cg $s 2>&1 | grep -q GROUP_ID_NOT_FOUND"
# SCRAM users, and the tools on the SASL listener with Kafka's --command-config properties.
check "user add salts the password here" bash -c "'$brook' user add cliuser --password cli-pw $s | grep -qx 'cliuser.added'"
check "user list shows mechanisms and iterations" bash -c "'$brook' user list $s | grep -qx 'cliuser.SCRAM-SHA-256(iterations=4096), SCRAM-SHA-512(iterations=4096)'"
printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="cliuser" password="cli-pw";\n' > "$work/client.properties"
sed 's/cli-pw/wrong/' "$work/client.properties" > "$work/wrong.properties"
check "the tools authenticate with --command-config" bash -c "'$brook' topic list --bootstrap-server 127.0.0.1:$sport --command-config '$work/client.properties' | grep -qx cli"
check "a wrong password fails readably" bash -c "'$brook' topic list --bootstrap-server 127.0.0.1:$sport --command-config '$work/wrong.properties' 2>&1 | grep -q SASL_AUTHENTICATION_FAILED; test \${PIPESTATUS[0]} -ne 0"
check "without credentials the SASL listener serves nothing" bash -c "! '$brook' topic list --bootstrap-server 127.0.0.1:$sport"
check "user delete" bash -c "'$brook' user delete cliuser $s | grep -qx 'cliuser.deleted' && ! '$brook' topic list --bootstrap-server 127.0.0.1:$sport --command-config '$work/client.properties'"
check "quota alter sets a client id's quotas" bash -c "'$brook' quota alter --client-id cliapp --add producer_byte_rate=1024,request_percentage=12.5 $s | grep -qx 'client-id=cliapp.altered'"
check "quota alter sets the default user's" bash -c "'$brook' quota alter --user-default --add consumer_byte_rate=2048 $s | grep -qx 'user=<default>.altered'"
check "quota describe lists them" bash -c "'$brook' quota describe $s > '$work/quotas' && grep -qx 'client-id=cliapp.producer_byte_rate=1024,request_percentage=12.5' '$work/quotas' && grep -qx 'user=<default>.consumer_byte_rate=2048' '$work/quotas'"
check "quota describe --client-id matches it alone" bash -c "'$brook' quota describe --client-id cliapp $s | wc -l | grep -qx 1"
check "quota alter refuses an unknown key readably" bash -c "'$brook' quota alter --client-id cliapp --add no_such_rate=1 $s 2>&1 | grep -q INVALID_REQUEST; test \${PIPESTATUS[0]} -ne 0"
check "quota alter --delete removes" bash -c "'$brook' quota alter --client-id cliapp --delete producer_byte_rate,request_percentage $s >/dev/null && '$brook' quota alter --user-default --delete consumer_byte_rate $s >/dev/null && test -z \"\$('$brook' quota describe $s)\""
check "acl list without an authorizer fails readably" bash -c "'$brook' acl list $s 2>&1 | grep -q SECURITY_DISABLED; test \${PIPESTATUS[0]} -ne 0"
check "perf mqtt publishes and delivers through the MQTT listener" bash -c "'$brook' perf mqtt --broker 127.0.0.1:$mport --messages 2000 --qos 1 --timeout 60 | grep -q 'delivered 2000 of 2000'"
check "and its messages are Kafka records keyed by MQTT topic" bash -c "'$brook' consume --topic mqtt-messages --from-beginning --max-messages 1 --print-key $s | grep -q '^perf/'"
check "serve refuses an MQTT listener of another kind readably" bash -c "'$brook' serve --override 'mqtt.listeners=tcp://127.0.0.1:1' --override 'log.dirs=$work/badmqtt' 2>&1 | grep -q 'expected mqtt://HOST:PORT or ws://HOST:PORT'"
check "and a mapping rule that is not FILTER=TOPIC" bash -c "'$brook' serve --override 'mqtt.topic.mappings=sensors/#' --override 'log.dirs=$work/badmqtt' 2>&1 | grep -q 'is not FILTER=TOPIC'"
check "and an enhanced authentication method it does not serve" bash -c "'$brook' serve --override 'mqtt.authentication.methods=KERBEROS' --override 'log.dirs=$work/badmqtt' 2>&1 | grep -q 'KERBEROS is not SCRAM-SHA-256 or SCRAM-SHA-512'"
quickstart="$(dirname "$brook")/brook-quickstart"
check "the client library's example makes a topic, sends and reads in a KIP-848 group" bash -c "'$quickstart' 127.0.0.1:$port consumer | grep -c '^read quickstart-' | awk '\$1 >= 10 {ok=1} END {exit !ok}'"
check "and again in a classic group" bash -c "'$quickstart' 127.0.0.1:$port classic | grep -c '^read quickstart-' | awk '\$1 >= 10 {ok=1} END {exit !ok}'"
check "topic delete" bash -c "'$brook' topic delete cli $s && ! '$brook' topic list $s | grep -qx cli"
check "serve stops cleanly on SIGTERM" bash -c "kill $broker_pid; for i in \$(seq 1 100); do kill -0 $broker_pid 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
check "and says so" grep -q "stopped cleanly" "$work/broker.log"
broker_pid=

# The quorum tools: bad input gets a readable error and a non-zero exit (scripts/quorum-failover.py
# runs real controllers).
check "controller refuses a malformed voter list" bash -c "'$brook' controller --node-id 1 --controller-quorum-voters 1@nowhere --data-dir '$work/q' 2>&1 | grep -q 'is not id@host:port'"
check "controller refuses a node outside the voters" bash -c "'$brook' controller --node-id 4 --controller-quorum-voters 1@127.0.0.1:1 --data-dir '$work/q' 2>&1 | grep -q 'node 4 is not in controller.quorum.voters'"
check "quorum status of an absent controller fails readably" bash -c "'$brook' quorum status --controller 127.0.0.1:1 --timeout-ms 500 2>&1 | grep -q 'cannot reach the controller'; test \${PIPESTATUS[0]} -ne 0"

# A controller alone serves its quorum's metrics and readiness with --http-listeners, and stops on SIGTERM.
qport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
qhttp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$brook" controller --node-id 1 --controller-quorum-voters "1@127.0.0.1:$qport" --data-dir "$work/lone" --http-listeners "http://127.0.0.1:$qhttp" 2>"$work/lone.log" &
controller_pid=$!
for _ in $(seq 1 100); do http_get "http://127.0.0.1:$qhttp/metrics" 2>/dev/null | grep -q '^brook_controller_active 1' && break; sleep 0.1; done
check "a controller serves its quorum's metrics (--http-listeners)" bash -c "$(declare -f http_get); http_get http://127.0.0.1:$qhttp/metrics | grep -q '^brook_controller_active 1' && http_get http://127.0.0.1:$qhttp/metrics | grep -q '^brook_raft_term '"
check "and its readiness" bash -c "$(declare -f http_get); http_get http://127.0.0.1:$qhttp/ready | grep -qx ready"
check "and stops cleanly on SIGTERM" bash -c "kill $controller_pid; for i in \$(seq 1 100); do kill -0 $controller_pid 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
controller_pid=

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
