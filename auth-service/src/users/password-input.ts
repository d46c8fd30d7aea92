// Reading a password for the users CLI: typed at a prompt that does not echo when stdin is
// a terminal, else the first line of whatever is piped in. Never from an argument.

/** A CLI failure with its exit code: 1 for failures, 2 for usage errors. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

/** Longest line read from a pipe: a password is far shorter (MAX_PASSWORD_BYTES). */
const MAX_LINE_BYTES = 8 * 1024;

interface TtyIn extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

/**
 * The new password: prompted twice without echo on a terminal, else the first line of stdin
 * (without its line ending).
 */
export async function readNewPassword(stdin: NodeJS.ReadableStream | undefined, prompt: NodeJS.WritableStream): Promise<string> {
  if (!stdin) throw new CliFailure('no standard input to read the password from');
  const tty = stdin as TtyIn;
  if (tty.isTTY && typeof tty.setRawMode === 'function') {
    const first = await promptHidden(tty, prompt, 'New password: ');
    const again = await promptHidden(tty, prompt, 'Repeat password: ');
    if (first !== again) throw new CliFailure('the two passwords differ; nothing was changed');
    return first;
  }
  return readFirstLine(stdin);
}

function readFirstLine(stdin: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const finish = (err: Error | null, value?: string) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      stdin.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    const onData = (chunk: Buffer | string) => {
      buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) return finish(null, buf.slice(0, nl).replace(/\r$/, ''));
      if (buf.length > MAX_LINE_BYTES) finish(new CliFailure('the line on standard input is far too long for a password'));
    };
    const onEnd = () => finish(null, buf.replace(/\r$/, ''));
    const onError = (err: Error) => finish(err);
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onError);
    stdin.resume();
  });
}

function promptHidden(stdin: TtyIn, out: NodeJS.WritableStream, question: string): Promise<string> {
  out.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    const done = (err: Error | null) => {
      stdin.off('data', onData);
      stdin.setRawMode!(false);
      stdin.pause();
      out.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003') return done(new CliFailure('cancelled', 1));
        if (ch === '\u0004') return value ? done(null) : done(new CliFailure('cancelled', 1));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.setRawMode!(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}
