#!/usr/bin/env python3
"""Register one account with PJSUA2 (pjsip's C++ API, Python binding `pjsua2`) and report
how it went, for the voxide end-to-end tests.

The account is what a user types into a stock phone: SIP identity, registrar and password.
Nothing else is changed from pjsip's defaults (digest algorithm included). pjsip's log, with
every SIP message sent and received, goes to --log.

Prints `registered: <code> <reason>` and exits 0 when the registrar answers 2xx; prints
`registration failed: <code> <reason>` and exits 1 on a final error; exits 2 when no answer
came within --timeout seconds.
"""

import argparse
import sys
import time

import pjsua2 as pj


class Account(pj.Account):
    """Remembers the last registration outcome."""

    def __init__(self):
        super().__init__()
        self.outcome = None

    def onRegState(self, prm):
        # 1xx and the intermediate 401 are not outcomes: pjsip answers the challenge itself.
        if prm.code >= 200:
            self.outcome = (prm.code, prm.reason)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-ip", required=True, help="address to bind SIP to")
    parser.add_argument("--local-port", type=int, default=5060)
    parser.add_argument("--registrar", required=True, help="e.g. sip:10.1.0.2")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--log", required=True, help="pjsip log file (level 5)")
    args = parser.parse_args()

    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    # No worker thread: callbacks run inside libHandleEvents on this thread.
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = False
    config.logConfig.level = 5
    config.logConfig.consoleLevel = 0
    config.logConfig.filename = args.log
    endpoint.libInit(config)
    # No sound card in a test: registration needs none, but pjsua opens one lazily.
    endpoint.audDevManager().setNullDev()

    transport = pj.TransportConfig()
    transport.boundAddress = args.local_ip
    transport.publicAddress = args.local_ip
    transport.port = args.local_port
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()

    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:{args.user}@{args.domain}"
    account_config.regConfig.registrarUri = args.registrar
    account_config.sipConfig.authCreds.append(
        pj.AuthCredInfo("digest", "*", args.user, 0, args.password)
    )
    account = Account()
    account.create(account_config)

    deadline = time.monotonic() + args.timeout
    while account.outcome is None and time.monotonic() < deadline:
        endpoint.libHandleEvents(20)

    outcome = account.outcome
    # Drop the account before the library goes: pjsua2 wants that order.
    del account
    endpoint.libDestroy()
    if outcome is None:
        print(f"no registration outcome within {args.timeout} s", flush=True)
        return 2
    code, reason = outcome
    if 200 <= code < 300:
        print(f"registered: {code} {reason}", flush=True)
        return 0
    print(f"registration failed: {code} {reason}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
