// Which mux client failures are the server refusing a session (MaxSessions): stderr as
// OpenSSH 9.2p1's client printed it here, against the harness sshd.
import assert from 'node:assert/strict';
import { sessionRefusal } from '../../src/transport/openssh-mux.js';

describe('transport/openssh-mux: session refusals', () => {
  it('a session refused by the server (MaxSessions) is one', () => {
    const stderr = 'mux_client_request_session: session request failed: Session open refused by peer\r\nkex_exchange_identification: Connection closed by remote host\r\n';
    assert.equal(sessionRefusal(stderr), 'mux_client_request_session: session request failed: Session open refused by peer');
  });

  it('a master that is gone (its control socket refuses the connection) is not: that master reconnects', () => {
    const stderr = 'Control socket connect(/tmp/ddt-ssh-x/cm): Connection refused\r\nkex_exchange_identification: Connection closed by remote host\r\n';
    assert.equal(sessionRefusal(stderr), undefined);
    assert.equal(sessionRefusal(''), undefined);
  });
});
