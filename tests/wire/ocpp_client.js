'use strict';
// A charger built on ocpp-rpc, an OCPP-J implementation independent of the `ocpp` Python library
// the central system uses, with its own strict schemas for ocpp1.6 and ocpp2.0.1. Driven by
// tests/test_ocpp_wire.py:
//
//   node ocpp_client.js '{"mode": "session", "endpoint": "ws://...", "identity": "CP-1",
//                         "password": "...", "protocol": "ocpp1.6", "token": "TAG-1"}'
//
// mode "connect": connect once and report how the handshake went.
// mode "session": run a whole charging session, print {"ready": true}, then answer the central
// system's calls until it sends Reset, and print a summary of everything on the last line.
// Every line on stdout is one JSON object; the exit code is 0 unless something unexpected failed.

const { RPCClient, createRPCError } = require('ocpp-rpc');

const config = JSON.parse(process.argv[2]);
const V16 = config.protocol === 'ocpp1.6';
const ENERGY = 'Energy.Active.Import.Register';
const t0 = Date.now();
const at = (seconds) => new Date(t0 + seconds * 1000).toISOString();

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function newClient(strictMode) {
    return new RPCClient({
        endpoint: config.endpoint,
        identity: config.identity,
        password: config.password,
        protocols: [config.protocol],
        strictMode,
        reconnect: false,
        callTimeoutMs: 10000,
    });
}

async function connectOnly() {
    const cli = newClient(true);
    try {
        await cli.connect();
    } catch (err) {
        emit({ connected: false, status: err.code ?? null, error: String(err) });
        return;
    }
    emit({ connected: true, protocol: cli.protocol });
    await cli.close();
}

// A call the client's own schemas would stop: strict mode off for that one call only, so the
// server's validation is what answers it.
async function unchecked(cli, out, method, params) {
    cli.reconfigure({ strictMode: false });
    const index = out.sent.length;
    try {
        const result = await cli.call(method, params);
        return { method, messageId: out.sent[index].messageId, result };
    } catch (err) {
        return { method, messageId: out.sent[index].messageId, errorCode: err.rpcErrorCode ?? null, message: err.message };
    } finally {
        cli.reconfigure({ strictMode: true });
    }
}

function sampled(value, extra) {
    return V16 ? { value: String(value), measurand: ENERGY, ...extra } : { value, measurand: ENERGY, ...extra };
}

async function session16(cli, out) {
    out.boot = await cli.call('BootNotification', {
        chargePointVendor: 'WireTest',
        chargePointModel: 'ocpp-rpc',
        firmwareVersion: '1.0.0',
    });
    out.heartbeat = await cli.call('Heartbeat', {});
    out.status = await cli.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Available' });
    out.authorizeKnown = await cli.call('Authorize', { idTag: config.token });
    out.authorizeUnknown = await cli.call('Authorize', { idTag: 'NOBODY-TAG' });
    out.start = await cli.call('StartTransaction', {
        connectorId: 1,
        idTag: config.token,
        meterStart: 1000,
        timestamp: at(0),
    });
    const transactionId = out.start.transactionId;
    out.meterWh = await cli.call('MeterValues', {
        connectorId: 1,
        transactionId,
        meterValue: [{ timestamp: at(1), sampledValue: [sampled(1500, { unit: 'Wh', context: 'Sample.Periodic' })] }],
    });
    out.meterKWh = await cli.call('MeterValues', {
        connectorId: 1,
        transactionId,
        meterValue: [{ timestamp: at(2), sampledValue: [sampled('2.25', { unit: 'kWh', context: 'Sample.Periodic' })] }],
    });
    out.stop = await cli.call('StopTransaction', {
        transactionId,
        idTag: config.token,
        meterStop: 3000,
        timestamp: at(3),
        reason: 'Local',
    });
    out.pingTransfer = await cli.call('DataTransfer', { vendorId: 'org.electra', messageId: 'ping', data: 'hello' });
    out.otherTransfer = await cli.call('DataTransfer', { vendorId: 'com.example.other', messageId: 'ping' });
    out.refused = [
        await unchecked(cli, out, 'Authorize', { idTag: 42 }),
        await unchecked(cli, out, 'StatusNotification', { connectorId: 1, errorCode: 'NoError' }),
        await unchecked(cli, out, 'Heartbeat', { unexpected: true }),
        await unchecked(cli, out, 'MakeCoffee', {}),
    ];
}

async function session201(cli, out) {
    const idToken = { idToken: config.token, type: 'ISO14443' };
    const txId = 'TX-WIRE-201';
    out.boot = await cli.call('BootNotification', {
        reason: 'PowerUp',
        chargingStation: { vendorName: 'WireTest', model: 'ocpp-rpc', firmwareVersion: '1.0.0' },
    });
    out.heartbeat = await cli.call('Heartbeat', {});
    out.status = await cli.call('StatusNotification', {
        timestamp: at(0),
        connectorStatus: 'Available',
        evseId: 1,
        connectorId: 1,
    });
    out.authorizeKnown = await cli.call('Authorize', { idToken });
    out.authorizeUnknown = await cli.call('Authorize', { idToken: { idToken: 'NOBODY-TAG', type: 'ISO14443' } });
    const event = (eventType, seqNo, seconds, value, unitOfMeasure, context, more) =>
        cli.call('TransactionEvent', {
            eventType,
            timestamp: at(seconds),
            triggerReason: eventType === 'Started' ? 'Authorized' : eventType === 'Ended' ? 'StopAuthorized' : 'MeterValuePeriodic',
            seqNo,
            transactionInfo: { transactionId: txId, chargingState: eventType === 'Ended' ? 'Idle' : 'Charging', ...more },
            evse: { id: 1, connectorId: 1 },
            idToken,
            meterValue: [{ timestamp: at(seconds), sampledValue: [sampled(value, { unitOfMeasure, context })] }],
        });
    out.started = await event('Started', 0, 0, 1000, { unit: 'Wh' }, 'Transaction.Begin', {});
    out.updatedKWh = await event('Updated', 1, 1, 1.5, { unit: 'kWh' }, 'Sample.Periodic', {});
    out.updatedMultiplier = await event('Updated', 2, 2, 2.25, { unit: 'Wh', multiplier: 3 }, 'Sample.Periodic', {});
    out.ended = await event('Ended', 3, 3, 3000, { unit: 'Wh' }, 'Transaction.End', { stoppedReason: 'Local' });
    out.transactionId = txId;
    out.pingTransfer = await cli.call('DataTransfer', { vendorId: 'org.electra', messageId: 'ping', data: 'hello' });
    out.otherTransfer = await cli.call('DataTransfer', { vendorId: 'com.example.other', messageId: 'ping' });
    out.refused = [
        await unchecked(cli, out, 'Authorize', { idToken: { idToken: 42, type: 'ISO14443' } }),
        await unchecked(cli, out, 'StatusNotification', { timestamp: at(0), evseId: 1, connectorId: 1 }),
        await unchecked(cli, out, 'Heartbeat', { unexpected: true }),
        await unchecked(cli, out, 'MakeCoffee', {}),
    ];
}

function answerCentralSystem(cli, out, triggered) {
    let resetDone;
    const reset = new Promise((resolve) => {
        resetDone = resolve;
    });
    let resetMessageId = null;
    const record = (messageId, method, params) => out.received.push({ messageId, method, params });

    cli.on('message', ({ message, outbound }) => {
        if (!outbound || resetMessageId === null) return;
        const frame = JSON.parse(String(message));
        if (frame[0] === 3 && frame[1] === resetMessageId) resetDone();
    });
    cli.handle('Reset', ({ messageId, method, params }) => {
        record(messageId, method, params);
        resetMessageId = messageId;
        return { status: 'Accepted' };
    });
    cli.handle('TriggerMessage', ({ messageId, method, params }) => {
        record(messageId, method, params);
        if (params.requestedMessage !== 'Heartbeat') return { status: 'NotImplemented' };
        // What a charger does after accepting: send the requested message, once the answer is out.
        setImmediate(() => triggered.push(cli.call('Heartbeat', {})));
        return { status: 'Accepted' };
    });
    cli.handle('GetConfiguration', ({ messageId, method, params }) => {
        record(messageId, method, params);
        const known = { HeartbeatInterval: '300', MeterValueSampleInterval: '60' };
        const keys = params.key ?? Object.keys(known);
        return {
            configurationKey: keys.filter((k) => k in known).map((k) => ({ key: k, readonly: false, value: known[k] })),
            unknownKey: keys.filter((k) => !(k in known)),
        };
    });
    cli.handle('GetVariables', ({ messageId, method, params }) => {
        record(messageId, method, params);
        return {
            getVariableResult: params.getVariableData.map(({ component, variable }) => ({
                attributeStatus: 'Accepted',
                attributeValue: '300',
                component,
                variable,
            })),
        };
    });
    for (const method of ['RemoteStartTransaction', 'RequestStartTransaction', 'SetChargingProfile']) {
        cli.handle(method, ({ messageId, params }) => {
            record(messageId, method, params);
            return { status: 'Accepted' };
        });
    }
    cli.handle(({ method }) => {
        throw createRPCError('NotImplemented', `the wire-test charger does not do ${method}`);
    });
    return reset;
}

async function runSession() {
    const cli = newClient(true);
    const out = { protocol: null, sent: [], received: [], strictFailures: [] };
    const triggered = [];
    cli.on('call', ({ outbound, payload }) => {
        if (outbound) out.sent.push({ messageId: payload[1], method: payload[2] });
    });
    cli.on('strictValidationFailure', ({ method, outbound, isCall, error }) => {
        out.strictFailures.push({ method, outbound, isCall, error: String(error) });
    });
    const reset = answerCentralSystem(cli, out, triggered);

    await cli.connect();
    out.protocol = cli.protocol;
    await (V16 ? session16(cli, out) : session201(cli, out));
    emit({ ready: true });

    const timeout = new Promise((_, reject) => {
        setTimeout(() => reject(new Error('no Reset from the central system within 30 s')), 30000).unref();
    });
    await Promise.race([reset, timeout]);
    out.triggered = await Promise.all(triggered);
    out.close = await cli.close({ code: 1000, reason: 'wire test done' });
    emit(out);
}

(config.mode === 'connect' ? connectOnly() : runSession()).catch((err) => {
    emit({ error: String(err), rpcErrorCode: err.rpcErrorCode ?? null, details: err.details ?? null });
    process.exitCode = 1;
});
