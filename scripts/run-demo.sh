#!/bin/sh
# make run: builds the demo tables under ./demo (once) and serves them with
# engramd in the foreground on ./run/engramd.sock. Ctrl-C stops it.
#
#   demo/slots    4 M slots x 80 bf16 values (Engram-27B row shape), by slot id
#   demo/layer1   engram-v1 tables shaped like the published Engram demo:
#   demo/layer15  orders 2 and 3, 8 heads, engram_vocab_size 646400 per order,
#                 rows of 64 bf16 values (~10.3 M slots each)
set -eu
BUILD=${1:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
ENGRAM="$BUILD/engram"
ENGRAMD="$BUILD/engramd"
DEMO=${DEMO_DIR:-demo}
SOCK=${DEMO_SOCKET:-$PWD/run/engramd.sock}

mkdir -p "$DEMO" "$(dirname "$SOCK")"

if ! "$ENGRAM" table info "$DEMO/slots" >/dev/null 2>&1; then
	echo "make run: creating $DEMO/slots (4 M slots x 80 bf16)"
	rm -rf "$DEMO/slots"
	"$ENGRAM" table create "$DEMO/slots" --name slots --slots 4194304 --dim 80 \
		--dtype bf16 --fill random:1
fi

if ! "$ENGRAM" table info "$DEMO/layer15" >/dev/null 2>&1; then
	echo "make run: generating engram-v1 hash specs for layers 1 and 15"
	PYTHONPATH="$PWD/$BUILD/gen/python:$PWD/client/python" "$PYTHON" -m engram_client.spec \
		--vocab-size 129280 --engram-vocab-size 646400,646400 --max-ngram 3 \
		--heads 8 --layers 1,15 --seed 0 --pad 2 --out-dir "$DEMO"
	for layer in 1 15; do
		rm -rf "$DEMO/layer$layer"
		echo "make run: creating $DEMO/layer$layer (64 bf16 per row; slots from the spec)"
		"$ENGRAM" table create "$DEMO/layer$layer" --name "layer$layer" --dim 64 \
			--dtype bf16 --fill "random:$layer" --hash "$DEMO/layer_$layer.json"
	done
fi

cat <<MSG

engramd is starting on unix:$SOCK with tables slots, layer1, layer15.
In another terminal:
  $ENGRAM info   --connect unix:$SOCK
  $ENGRAM lookup --connect unix:$SOCK --table slots --slots 0,1,4194303
  $ENGRAM tokens --connect unix:$SOCK --tables layer1,layer15 --tokens 100,200,300
  PYTHONPATH=$BUILD/gen/python:client/python $PYTHON examples/gating.py --connect unix:$SOCK
Stop with Ctrl-C.

MSG
exec "$ENGRAMD" --listen "unix:$SOCK" \
	--table "slots=$DEMO/slots" --table "layer1=$DEMO/layer1" --table "layer15=$DEMO/layer15"
