import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Import boundaries. The product (what the image ships) imports only itself; the developer
// environment (devenv/: control plane, npm start, simulated hosts) is built on the product;
// tests (e2e/) and the benchmark (bench/) are built on both, and bench/ never on e2e/.
const importsFrom = (folders, why) => ({
  regex: `^(\\.\\.?/)+(${folders.join('|')})(/|$)`,
  message: why,
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.kubenova/', 'common/api/types.generated.ts', 'charts/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // Prettier wraps code at 120; this catches what it cannot wrap (comments). A long string or
      // template literal stays whole, so a message can be searched for as users see it.
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true },
      ],
    },
  },
  {
    files: ['common/**', 'operator/**', 'node-agent/**', 'plugin/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            importsFrom(
              ['devenv', 'e2e', 'bench'],
              'product code (common/, operator/, node-agent/, plugin/) must not import from devenv/, e2e/ or bench/',
            ),
          ],
        },
      ],
    },
  },
  {
    files: ['devenv/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            importsFrom(
              ['e2e', 'bench'],
              'devenv/ is what tests and the benchmark build on: it must not import from e2e/ or bench/',
            ),
          ],
        },
      ],
    },
  },
  {
    files: ['bench/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [importsFrom(['e2e'], 'bench/ must not import from e2e/: move what both need into devenv/')] },
      ],
    },
  },
);
