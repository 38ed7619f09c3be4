#!/usr/bin/env bash
# Quick look at where PostgreSQL time goes: sample pg_stat_activity while
# (a) 16 clients enqueue with no workers, (b) 2x4 workers drain.
set -u
B=/work/bench-jobs-wt/bench/target
SVC=$B/service/release/notes-api
DB=notes_bench_jobs_prof
PG=postgres://postgres@127.0.0.1:5432
W=/tmp/bj-prof; rm -rf $W; mkdir -p $W
psql $PG/postgres -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; psql $PG/postgres -qAtc "CREATE DATABASE $DB"
common="NOTES_DATA_DIR=$W NOTES_LOG=warn NOTES_DATABASE_URL=$PG/$DB"
env $common NOTES_LISTEN=127.0.0.1:18090 NOTES_WORKERS=0 $SVC serve > $W/api.log 2>&1 & API=$!
sleep 2
sample() { # label secs
  end=$((SECONDS+$2)); : > $W/$1.samples
  while [ $SECONDS -lt $end ]; do
    psql $PG/postgres -qAtc "select coalesce(wait_event_type,'CPU')||':'||coalesce(wait_event,'-')||' '||state||' '||left(regexp_replace(query,'\s+',' ','g'),40) from pg_stat_activity where datname='$DB' and state<>'idle'" >> $W/$1.samples
    sleep 0.05
  done
  sort $W/$1.samples | uniq -c | sort -rn | head -12
}
$B/release/notes-bench jobs-enqueue --addr 127.0.0.1:18090 --jobs 6000 --concurrency 16 > $W/enq.json & ENQ=$!
sleep 1; echo "== enqueue only (16 clients, no workers)"; sample enq 4; wait $ENQ; cat $W/enq.json; echo
echo "== queued rows: $(psql $PG/$DB -qAtc "select count(*) from jobs where status='queued'")"
env $common NOTES_LISTEN=127.0.0.1:18091 NOTES_WORKERS=4 $SVC worker > $W/w1.log 2>&1 & W1=$!
env $common NOTES_LISTEN=127.0.0.1:18092 NOTES_WORKERS=4 $SVC worker > $W/w2.log 2>&1 & W2=$!
sleep 1; echo "== drain (2 x 4 workers)"; sample drain 5
psql $PG/$DB -qAtc "select status,count(*) from jobs group by 1"
psql $PG/$DB -qAtc "explain (analyze, buffers) select seq from jobs where status in ('queued','failed','running') and due_at <= (extract(epoch from now())*1000)::bigint order by due_at limit 1 for update skip locked" 
psql $PG/$DB -qAtc "select relname,n_tup_upd,n_tup_hot_upd,n_dead_tup,n_live_tup,autovacuum_count from pg_stat_user_tables where relname='jobs'"
kill $W1 $W2 $API; wait
psql $PG/postgres -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
