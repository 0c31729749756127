#!/usr/bin/env bash
# Checks the programs a cloud pod VM image is built from before anything is created in the cloud
# (podvm/Makefile and the first step of both templates). Usage: check-inputs.sh FORWARDER
# PROCESS_USER_DATA KATA_AGENT ATTESTATION_CLIENT
set -uo pipefail

fail=0
check() { # NAME PATH HINT
	if [[ -z $2 ]]; then
		echo "podvm/packer: error: $1 is not set: $3" >&2
		fail=1
	elif [[ ! -f $2 || ! -x $2 ]]; then
		echo "podvm/packer: error: $1=$2 does not exist or is not executable: $3" >&2
		fail=1
	fi
}
check forwarder "${1:-}" "run 'make' in the repository root (build/bin/agent-protocol-forwarder)"
check process_user_data "${2:-}" "run 'make' in the repository root (build/bin/process-user-data)"
check attestation_client "${4:-}" "run 'make' in the repository root (build/bin/attestation-client)"
check kata_agent "${3:-}" "pass -var kata_agent=/path/to/kata-agent (make: CLOUD_KATA_AGENT=...); see podvm/README.md"
((fail == 0)) || exit 1
echo "podvm/packer: inputs ok: $1 $2 $3 $4"
