#!/usr/bin/env bash
# repltool's verbs over a resource file: create-md, up, down, primary and
# secondary. The failover comes before the downs and failed ups, whose
# streams end with records unreleased: a replica that follows them is
# outdated past the gap (see "Streams" in Documentation/dm-repl.md). One kernel holds both sites of group vm1: alpha (kernel group
# vm1) and beta (kernel group vm1b), two volumes each on loop disks, chosen
# with --site. No repld here: `repltool replicate --once` drains the ring
# where repld would, for a planned failover from alpha to beta and back.
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/lib.sh"

C=$(mktemp -d /tmp/resource.XXXXXX)
MB=32
for v in A0 AM0 A1 AM1 B0 BM0 B1 BM1; do
	case $v in *M*) size=2 ;; *) size=$MB ;; esac
	dev=$(loop_disk $size) || tap_bail "no loop disk"
	printf -v "$v" %s "$dev"
done
S=$(blockdev --getsz "$A0")

# conf DIR RING DATA_A1: a resource file for vm1 in DIR, with ring-size RING
# and DATA_A1 as the data device of alpha's volume 1.
conf() {
	mkdir -p "$1"
	cat >"$1/vm1.conf" <<-EOF
	group vm1 {
		ring-size $2;
		tls { psk $C/vm1.psk; }
		site alpha {
			host alpha;
			address 127.0.0.1:7791;
			volume 0 { data $A0; meta $AM0; }
			volume 1 { data $3; meta $AM1; }
		}
		site beta {
			host beta;
			address 127.0.0.2:7791;
			group vm1b;
			volume 0 { device vm1b-0; data $B0; meta $BM0; }
			volume 1 { device vm1b-1; data $B1; meta $BM1; }
		}
	}
	EOF
}
conf "$C" 16M "$A1"

rt() { "$REPLTOOL" "$@" --config-dir "$C"; }
# fails CODE TEXT CMD...: CMD exits with CODE and its stderr has TEXT.
fails() {
	local code=$1 text=$2 rc=0 err
	shift 2
	err=$("$@" 2>&1 >/dev/null) || rc=$?
	echo "exit $rc: $err"
	[[ $rc == "$code" ]] && grep -qF -- "$text" <<<"$err"
}
devnum() { stat -L -c '%Hr:%Lr' "$1"; }
# table_is DEV DATA META ROLE_AND_OPTIONS: dmsetup table of DEV.
table_is() {
	local want got
	want="0 $S repl $(devnum "$2") $(devnum "$3") $4"
	got=$(dmsetup table "$1")
	echo "got:  $got"
	echo "want: $want"
	[[ $got == "$want" ]]
}
PRI="primary 8 ring_mb 16 region_kb 64 overflow bitmap block_ms 100"
exists() { dmsetup info "$1" >/dev/null 2>&1; }
node_ok() { [[ -b /dev/mapper/$1 ]]; }
write_random() {
	dd if=/dev/urandom of="/dev/mapper/$1" bs=64k count=16 seek="$2" oflag=direct status=none
}
same_data() {
	echo 1 >/proc/sys/vm/drop_caches
	cmp "/dev/mapper/$1" "/dev/mapper/$2" && cmp "$3" "$4"
}

tap_plan 38
tap_strict

tap_check "create-md needs --role" fails 2 "--role is required" rt create-md vm1 --site alpha
tap_check "create-md writes alpha's metadata as primary" \
	rt create-md vm1 --site alpha --role primary
tap_check "create-md writes beta's metadata as secondary, for its kernel group" \
	bash -c "\"$REPLTOOL\" create-md vm1 --site beta --role secondary --config-dir $C &&
		\"$REPLTOOL\" meta show $BM1 | grep -Eq '^group +vm1b\$' &&
		\"$REPLTOOL\" meta show $BM1 | grep -Eq '^volume +1\$'"
tap_check "create-md does not overwrite metadata without --force" \
	fails 1 "holds dm-repl metadata of group \"vm1\"" rt create-md vm1 --site alpha --role primary
tap_check "with --force it does" rt create-md vm1 --site alpha --role primary --force

tap_check "up loads alpha's volumes" rt up vm1 --site alpha
tap_check "up loads beta's volumes" rt up vm1 --site beta
tap_check "alpha's volume 0 has its primary table" table_is vm1-0 "$A0" "$AM0" "vm1 $PRI"
tap_check "alpha's volume 1 has its primary table" table_is vm1-1 "$A1" "$AM1" "vm1 $PRI"
tap_check "beta's volume 1 has its secondary table, source alpha's group" \
	table_is vm1b-1 "$B1" "$BM1" "vm1b secondary 6 ring_mb 16 region_kb 64 source vm1"
tap_check "the /dev/mapper nodes exist" bash -c "$(declare -f node_ok); node_ok vm1-0 && node_ok vm1-1 && node_ok vm1b-0 && node_ok vm1b-1"
tap_check "up again leaves them as they are" \
	bash -c "out=\$(\"$REPLTOOL\" up vm1 --site alpha --config-dir $C) && echo \"\$out\" &&
		grep -q 'vm1-0: up already' <<<\"\$out\" && grep -q 'vm1-1: up already' <<<\"\$out\""
conf "$C/ring32" 32M "$A1"
tap_check "a volume up with another table is refused, naming it" \
	fails 1 "vm1-0: is up with another table" "$REPLTOOL" up vm1 --site alpha --config-dir "$C/ring32"
tap_check "and keeps its table" table_is vm1-0 "$A0" "$AM0" "vm1 $PRI"

# A planned failover from alpha to beta, and replication back.
tap_setup "write on alpha" bash -c "$(declare -f write_random); write_random vm1-0 0 && write_random vm1-1 32"
exec 3</dev/mapper/vm1-0
tap_check "secondary is refused while a volume is open, with the reason" \
	fails 1 "vm1-0: Device or resource busy: it is open (1 opener)" rt secondary vm1 --site alpha
exec 3<&-
tap_check "secondary --wait gives up when nothing drains the ring" \
	fails 1 "records not released to the peer after 1 s" rt secondary vm1 --site alpha --wait 1
tap_check "without --wait the kernel's refusal is explained" \
	fails 1 "records are not yet released to the peer: wait for the drain (--wait) or use --force" \
	rt secondary vm1 --site alpha
tap_check "the refused demotion resumed every volume" \
	bash -c "! dmsetup info vm1-0 vm1-1 | grep -q SUSPENDED && test \"\$(blockdev --getro /dev/mapper/vm1-0)\" = 0"
tap_setup "replicate alpha to beta" "$REPLTOOL" replicate vm1 vm1b --once
tap_check "secondary demotes a drained alpha" rt secondary vm1 --site alpha --wait 10
tap_check "alpha's tables are reloaded as secondary, source beta's group" \
	table_is vm1-1 "$A1" "$AM1" "vm1 secondary 6 ring_mb 16 region_kb 64 source vm1b"
tap_check "alpha's devices are read-only" test "$(blockdev --getro /dev/mapper/vm1-0)" = 1
tap_check "beta applied it all and is consistent" \
	test "$(dmsetup status vm1b-0 | awk '{ print $7 }')" = consistent
tap_check "primary promotes beta" rt primary vm1 --site beta
tap_check "beta's tables are reloaded as primary" table_is vm1b-0 "$B0" "$BM0" "vm1b $PRI"
tap_check "up after the failover leaves both sites as they are" \
	bash -c "\"$REPLTOOL\" up vm1 --site alpha --config-dir $C && \"$REPLTOOL\" up vm1 --site beta --config-dir $C"
tap_setup "write on beta" bash -c "$(declare -f write_random); write_random vm1b-0 16 && write_random vm1b-1 48"
tap_setup "replicate beta back to alpha" "$REPLTOOL" replicate vm1b vm1 --once
tap_check "volume 0 is the same on both sites, byte for byte" \
	same_data vm1-0 vm1b-0 "$A0" "$B0"
tap_check "volume 1 is the same on both sites, byte for byte" \
	same_data vm1-1 vm1b-1 "$A1" "$B1"

exec 3</dev/mapper/vm1-1
tap_check "down is refused while a volume is open, naming it" \
	fails 1 "vm1-1: Device or resource busy: it is open" rt down vm1 --site alpha
exec 3<&-
tap_check "and removes none" bash -c "$(declare -f exists); exists vm1-0 && exists vm1-1"
tap_check "down removes alpha's devices and nodes" \
	bash -c "\"$REPLTOOL\" down vm1 --site alpha --config-dir $C && $(declare -f exists node_ok);
		! exists vm1-0 && ! exists vm1-1 && ! node_ok vm1-0 && ! node_ok vm1-1"

conf "$C/missing" 16M /dev/no-such-disk
tap_check "up fails on a missing data device, naming it" \
	fails 1 "volume 1: data /dev/no-such-disk: No such file or directory" \
	"$REPLTOOL" up vm1 --site alpha --config-dir "$C/missing"
tap_check "and leaves no volume up" bash -c "$(declare -f exists); ! exists vm1-0 && ! exists vm1-1"
spare=$(loop_disk 1)
dm_create vm1-1 "0 $(blockdev --getsz "$spare") linear $spare 0"
tap_check "up fails when volume 1's name is taken by another device" \
	fails 1 "vm1-1: is up with another table" rt up vm1 --site alpha
tap_check "and removes volume 0 again (all or nothing)" \
	bash -c "$(declare -f exists); ! exists vm1-0 && ! test -e /dev/mapper/vm1-0"
tap_check "the other device is untouched" test "$(dmsetup table vm1-1)" = "0 2048 linear $(devnum "$spare") 0"
dmsetup remove vm1-1

tap_check "a bad group name is a usage error" fails 2 "bad group name" rt up ../vm1 --site alpha
tap_check "a missing resource file is named" fails 1 "$C/nosuch.conf" rt up nosuch --site alpha

tap_setup "down beta" rt down vm1 --site beta
tap_check "nothing is left" test "$(live_objects)" = "0 0 0"
loop_disks_free
tap_done
