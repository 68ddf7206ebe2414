/**
 * A `deno lint` plugin with one rule, `lpm/max-function-lines`: a function
 * (declaration, expression, arrow or method) spans fewer than
 * {@linkcode MAX_FUNCTION_LINES} lines, nested functions included, so a
 * factory that returns closures counts them as its own. Long functions are
 * where the reconcile steps and pipelines of this project stopped being
 * readable; a split into named steps is the fix.
 * @module
 */

/** The largest allowed span of one function, in lines (exclusive). */
export const MAX_FUNCTION_LINES = 120;

/** Lines spanned by the source range [start, end) of `text`. */
export function lineSpan(text: string, start: number, end: number): number {
  let lines = 1;
  for (let i = start; i < end; i++) if (text.charCodeAt(i) === 10) lines++;
  return lines;
}

const plugin: Deno.lint.Plugin = {
  name: "lpm",
  rules: {
    "max-function-lines": {
      create(context) {
        const check = (node: Deno.lint.Node & { range: Deno.lint.Range }) => {
          const [start, end] = node.range;
          const lines = lineSpan(context.sourceCode.text, start, end);
          if (lines >= MAX_FUNCTION_LINES) {
            context.report({
              node,
              message: `Function spans ${lines} lines (limit ${
                MAX_FUNCTION_LINES - 1
              }): split it into named steps`,
            });
          }
        };
        return {
          FunctionDeclaration: check,
          FunctionExpression: check,
          ArrowFunctionExpression: check,
        };
      },
    },
  },
};

export default plugin;
