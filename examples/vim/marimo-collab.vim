" marimo-collab.vim: take part in a live marimo-collab notebook from Vim or Neovim.
"
" :MarimoCollab {notebook on the server} [{local file}]
"     runs `marimo-collab mirror` in a small terminal window and opens the local file.
"     Saving (:w) sends your changes; peers' changes are written into the file and
"     reloaded into the buffer while it has no unsaved changes ('autoread' + :checktime).
" :MarimoCollabStop
"     stops the mirror (it sends a last save first).
"
" Settings (optional, in your vimrc before this file is sourced):
"   let g:marimo_collab_server = 'https://hub.example.org/user/alice/'
"   let g:marimo_collab_token_file = '~/.config/marimo-collab/token'
"   let g:marimo_collab_autosave = 1   " :update on InsertLeave/TextChanged (fewer conflicts)
" Without a token file the mirror reads $MARIMO_COLLAB_TOKEN, $JUPYTERHUB_API_TOKEN or
" $JUPYTER_TOKEN from Vim's environment. Never put the token on the command line.

if exists('g:loaded_marimo_collab')
  finish
endif
let g:loaded_marimo_collab = 1

let g:marimo_collab_command = get(g:, 'marimo_collab_command', 'marimo-collab')
let g:marimo_collab_server = get(g:, 'marimo_collab_server', $MARIMO_COLLAB_SERVER)
let g:marimo_collab_token_file = get(g:, 'marimo_collab_token_file', '')
let g:marimo_collab_autosave = get(g:, 'marimo_collab_autosave', 0)

let s:job = v:null
let s:timer = -1

function! s:Command(notebook, local) abort
  let cmd = [g:marimo_collab_command, 'mirror']
  if !empty(g:marimo_collab_server)
    call extend(cmd, ['--server', g:marimo_collab_server])
  endif
  if !empty(g:marimo_collab_token_file)
    call extend(cmd, ['--token-file', expand(g:marimo_collab_token_file)])
  endif
  return cmd + [a:notebook, a:local]
endfunction

function! s:Start(notebook, ...) abort
  if s:job isnot v:null
    echoerr 'marimo-collab: a mirror is already running (:MarimoCollabStop)'
    return
  endif
  let local = fnamemodify(a:0 ? a:1 : fnamemodify(a:notebook, ':t'), ':p')
  let cmd = s:Command(a:notebook, local)
  " The mirror's status lines (who joined, what was sent, reconnects) in a small window.
  if has('nvim')
    botright 8split
    enew
    let s:job = termopen(cmd)
  else
    let buf = term_start(cmd, {'term_rows': 8, 'term_finish': 'open', 'vertical': 0})
    let s:job = term_getjob(buf)
  endif
  wincmd p
  " The mirror creates the file from the session when it does not exist yet.
  let waited = 0
  while !filereadable(local) && waited < 100 && s:Running()
    sleep 100m
    let waited += 1
  endwhile
  if !filereadable(local)
    let s:job = v:null
    echoerr 'marimo-collab: the mirror did not start; see its window'
    return
  endif
  execute 'edit' fnameescape(local)
  setlocal autoread
  augroup marimo_collab
    autocmd! * <buffer>
    autocmd CursorHold,CursorHoldI,FocusGained,BufEnter <buffer> silent! checktime
    if g:marimo_collab_autosave
      autocmd InsertLeave,TextChanged <buffer> silent! update
    endif
  augroup END
  " CursorHold needs the cursor to rest; a timer also reloads while you only read.
  if exists('*timer_start')
    let s:timer = timer_start(500, {-> execute('silent! checktime')}, {'repeat': -1})
  endif
endfunction

function! s:Running() abort
  if has('nvim')
    return jobwait([s:job], 0)[0] == -1
  endif
  return job_status(s:job) ==# 'run'
endfunction

function! s:Stop() abort
  if s:timer != -1
    call timer_stop(s:timer)
    let s:timer = -1
  endif
  if s:job is v:null
    return
  endif
  " SIGTERM: the mirror sends a last save and closes its connection.
  if has('nvim')
    call jobstop(s:job)
  else
    call job_stop(s:job, 'term')
  endif
  let s:job = v:null
endfunction

command! -nargs=+ -complete=file MarimoCollab call s:Start(<f-args>)
command! MarimoCollabStop call s:Stop()

augroup marimo_collab_exit
  autocmd!
  autocmd VimLeavePre * call s:Stop()
augroup END
